import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from drivekit import bddoia, metrics, plots, synthetic, taxonomy


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = synthetic.generate(tmp_path_factory.mktemp("syn"), n_clips=30, n_frames=2, size=(48, 48), seed=1,
                              workers=1, progress=False)
    samples = [s for part in bddoia.read_splits(root).values() for s in part.samples]
    return root, samples


def _matrices(samples):
    return np.array([s.actions for s in samples]), np.array([s.reasons for s in samples])


def test_dataset_table_counts_and_figure(data):
    _, samples = data
    labels = bddoia.label_frame(samples)
    ref = {"BDD-OIA": (taxonomy.BDDOIA_ACTION_COUNTS, taxonomy.BDDOIA_REASON_COUNTS)}
    table = plots.dataset_table(labels, ref).reset_index()
    assert len(table) == sum(len(g) for g in taxonomy.GROUPS.values())
    actions, reasons = _matrices(samples)
    for _, row in table.iterrows():
        assert row["reason count"] == reasons[:, row["reason index"]].sum()
        assert row["BDD-OIA reason"] == taxonomy.BDDOIA_REASON_COUNTS[row["reason index"]]
    assert len(plots.plot_dataset_table(plots.dataset_table(labels, ref)).axes) == 1


def test_distributions_one_row_per_source(data):
    _, samples = data
    m = _matrices(samples)
    fig = plots.plot_distributions({"GT": m, "SFT": m, "A2C": m})
    assert len(fig.axes) == 6
    heights = [p.get_height() for p in fig.axes[1].patches]
    assert heights == list(m[1].sum(0)[np.concatenate(list(taxonomy.GROUPS.values()))])  # grouped order


def test_gallery_cooccurrence_and_examples(data):
    root, samples = data
    assert len(plots.plot_clips(root, samples[:3]).axes) == 3 * 3  # 2 frames + labels per clip
    assert len(plots.plot_cooccurrence(bddoia.label_frame(samples)).axes) == 1
    rows = [dict(file_name=s.name, actions_true=s.actions, reasons_true=s.reasons,
                 actions_pred=s.actions, reasons_pred=[0] * taxonomy.N_REASONS) for s in samples[:4]]
    fig = plots.plot_examples(root, rows, cols=2)
    assert len(fig.axes) == 2 * 2 * 2
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert texts[0] == "G" and texts[5] == "P"


def test_loss_curves_and_f1_tables(data):
    _, samples = data
    log = pd.DataFrame(dict(step=range(5), train=np.linspace(2, 1, 5), val=[np.nan] * 4 + [1.1]))
    assert len(plots.plot_loss_curves({"SFT": log, "A2C": log}).axes) == 2
    a, r = _matrices(samples)
    reports = {"SFT": metrics.report(a, a, r, r), "A2C": metrics.report(a, 1 - a, r, 1 - r)}
    per_class = {k: metrics.per_class_frame(reports, k) for k in ("actions", "reasons")}
    fig = plots.plot_f1_tables(per_class, metrics.report_frame(reports).iloc[:, :2])
    assert [ax.get_title() for ax in fig.axes] == ["actions: per-class F1 (%)", "reasons: per-class F1 (%)",
                                                   "sample-level F1 (%)"]
