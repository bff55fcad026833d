import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from drivekit.data import bddoia, synthetic
from drivekit.evaluation import metrics, plots
from drivekit.core import taxonomy


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
    fig = plots.plot_loss_curves({"SFT": log, "A2C": log})
    assert [ax.get_ylabel() for ax in fig.axes] == ["train", "val"]  # a panel per measure, the runs in it
    assert [len(ax.lines) for ax in fig.axes] == [2, 2] and len(fig.legends) == 1
    sft = log.rename(columns={"train": "train_loss", "val": "val_loss"})
    rl = pd.DataFrame(dict(step=range(5), reward=np.linspace(1, 1.5, 5), kl=np.linspace(0, 0.01, 5)))
    fig = plots.plot_loss_curves({"SFT": sft, "A2C": rl})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_ylabel() for ax in visible] == ["loss", "reward", "kl"]  # train and val loss share a panel
    assert [len(ax.lines) for ax in visible] == [2, 1, 1]
    a, r = _matrices(samples)
    reports = {"SFT": metrics.report(a, a, r, r), "A2C": metrics.report(a, 1 - a, r, 1 - r)}
    per_class = {k: metrics.per_class_frame(reports, k) for k in ("actions", "reasons")}
    fig = plots.plot_f1_tables(per_class, metrics.report_frame(reports).iloc[:, :2])
    assert [ax.get_title() for ax in fig.axes] == ["actions: per-class F1 (%)", "reasons: per-class F1 (%)",
                                                   "sample-level F1 (%)"]


def test_f1_tables_show_classes_absent_from_the_truth_as_na():
    truth = np.zeros((3, taxonomy.N_REASONS), int)
    truth[:, 3] = 1  # only "Obstacle: car" occurs
    pred = truth.copy()
    pred[0, 7] = 1  # a false positive of a class the truth never has: its F1 is 0, shown n/a all the same
    a = np.eye(taxonomy.N_ACTIONS, dtype=int)[[1, 1, 1]]
    reports = {"SFT": metrics.report(a, a, truth, pred)}
    per_class = {k: metrics.absent_as_nan(metrics.per_class_frame(reports, k), t)
                 for k, t in (("actions", a), ("reasons", truth))}
    assert per_class["reasons"].notna().sum(axis=1).tolist() == [1]
    assert per_class["reasons"][("Stop", "s_ob_car")].tolist() == [100.0]
    assert per_class["actions"].notna().sum(axis=1).tolist() == [1]
    fig = plots.plot_f1_tables(per_class, metrics.report_frame(reports).iloc[:, :2])
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert texts.count("n/a") == taxonomy.N_REASONS - 1 and "100" in texts
    assert fig.axes[1].get_title().endswith("n/a: absent from the test split")
    assert "n/a" not in [t.get_text() for t in fig.axes[2].texts]

def _rows(samples, flip=()):
    """Prediction rows: predictions equal the truth, except for the samples in ``flip`` (action and
    reasons replaced by their complements)."""
    rows = []
    for i, s in enumerate(samples):
        a, r = list(s.actions), list(s.reasons)
        if i in flip:
            a, r = [1 - v for v in a], [1 - v for v in r]
        rows.append(dict(file_name=s.name, text="", actions_true=list(s.actions), reasons_true=list(s.reasons),
                         actions_pred=a, reasons_pred=r, ok=True, problems=[]))
    return rows


def test_confusion_matrices_and_panels(data):
    _, samples = data
    models = {"SFT": _rows(samples), "A2C": _rows(samples, flip={0, 1, 2}), "JSON-RL": _rows(samples, flip={3})}
    a2c = plots.confusion_matrices(models["A2C"])
    assert a2c.shape == (taxonomy.N_ACTIONS, 2, 2)
    truth, pred = plots.label_matrices(models["A2C"], "true")[0], plots.label_matrices(models["A2C"])[0]
    for c in range(taxonomy.N_ACTIONS):  # [[TN, FP], [FN, TP]] per action
        t, p = truth[:, c], pred[:, c]
        expected = [[((t == 0) & (p == 0)).sum(), ((t == 0) & (p == 1)).sum()],
                    [((t == 1) & (p == 0)).sum(), ((t == 1) & (p == 1)).sum()]]
        np.testing.assert_array_equal(a2c[c], expected)
    assert a2c.sum() == len(samples) * taxonomy.N_ACTIONS
    assert plots.confusion_matrices(models["SFT"], "reasons").shape == (taxonomy.N_REASONS, 2, 2)

    fig = plots.plot_confusion(models)
    assert len(fig.axes) == 3 * taxonomy.N_ACTIONS  # one panel per model and action, no colour bars
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("SFT · Move forward") and titles[4 + 3].startswith("A2C · Turn right")
    assert titles[8].startswith("JSON-RL")
    for k, ax in enumerate(fig.axes[4:8]):  # the A2C row shows its counts, row by row
        assert [int(t.get_text()) for t in ax.texts] == a2c[k].ravel().tolist()
    assert fig.axes[0].get_title().endswith("F1 1.00")  # SFT predicts the truth

    reasons = plots.plot_confusion(models, "reasons", classes=[3, 7])
    assert len(reasons.axes) == 3 * 2 and "Obstacle: car" in reasons.axes[0].get_title()
    with pytest.raises(ValueError):
        plots.plot_confusion({"SFT": models["SFT"], "other": models["SFT"][:-1]})


def test_prediction_distributions_pick_and_examples_by_model(data):
    root, samples = data
    models = {"SFT": _rows(samples), "A2C": _rows(samples, flip={0, 1, 2})}
    fig = plots.plot_prediction_distributions(models)
    assert len(fig.axes) == 2 * 3  # GT, SFT, A2C
    assert [ax.get_ylabel() for ax in fig.axes[::2]] == ["GT", "SFT", "A2C"]

    names = plots.pick_examples(models, n_differ=2, n_agree=2)
    assert len(names) == 4 and len(set(names)) == 4
    assert set(names[:2]) <= {s.name for s in samples[:3]}  # predictions differ on these clips only
    assert not set(names[2:]) & {s.name for s in samples[:3]}
    assert len(plots.pick_examples(models, n_differ=5, n_agree=1)) == 6  # agreeing clips fill in

    fig = plots.plot_examples_by_model(root, models, names, cols=2)
    assert len(fig.axes) == 2 * 2 * 2
    tags = [t.get_text() for t in fig.axes[1].texts if t.get_weight() == "bold"]
    assert tags == ["G", "SFT", "A2C"]
