"""A2C (drivekit.algorithms.a2c: rollout, per-token rewards, value head, trainer) on a tiny randomly initialised
Idefics3 model with LoRA."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import Idefics3Config, Idefics3ForConditionalGeneration

from drivekit.algorithms import a2c
from drivekit.rewards.weighted_reward import WeightedReward

PAD, EOS, BOS, IMAGE, FAKE, ASSISTANT = 0, 1, 2, 3, 4, 5
VOCAB = 40
TARGET = 7  # the token the trivial reward asks for


def tiny_policy(seed: int = 0):
    """A random Idefics3 (1 image token per 24 px frame) wrapped with LoRA. Its LM head is scaled
    up so that the random policy is not uniform and small LoRA changes can move it."""
    torch.manual_seed(seed)
    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=24, patch_size=12),
        text_config=dict(model_type="llama", vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=128, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=BOS),
        scale_factor=2, image_token_id=IMAGE, pad_token_id=PAD)
    model = Idefics3ForConditionalGeneration(config)
    model.lm_head.weight.data *= 10
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                           "up_proj", "down_proj"])
    return get_peft_model(model, lora)


def clips(n: int = 16, seed: int = 1) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [dict(file_name=f"clip{i}", pixels=torch.randn(2, 3, 24, 24, generator=g)) for i in range(n)]


def make_inputs(items, extra_text: list[int] | None = None):
    """Images-only prompts: <bos> (<fake><image><fake>) x 2 frames, 'Assistant:'; optional extra tokens
    per row (then left-padded) to test padding."""
    rows = []
    for i, _ in enumerate(items):
        extra = (extra_text or [0] * len(items))[i]
        rows.append([BOS, FAKE, IMAGE, FAKE, FAKE, IMAGE, FAKE] + [10 + j for j in range(extra)] + [ASSISTANT])
    width = max(map(len, rows))
    ids = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return dict(input_ids=ids, attention_mask=mask, pixel_values=torch.stack([it["pixels"] for it in items]))


def decode(ids) -> str:
    return " ".join(f"t{i}" for i in ids if i not in (PAD, EOS))


def hit(completions, **batch):
    return [float(f"t{TARGET}" in text.split()) for text in completions]


def trainer(model=None, reward=None, run_dir=None, **changes):
    settings = a2c.A2CSettings(steps=30, batch_size=8, lr=1e-2, value_lr=1e-2, max_new_tokens=5,
                               reward_mode="terminal", prefix_every="token").replace(**changes)
    return a2c.A2CTrainer(model or tiny_policy(), clips(), make_inputs, decode,
                          reward or WeightedReward({"hit": (1.0, hit)}), settings, eos_ids=[EOS], pad_id=PAD,
                          run_dir=run_dir)


# ---------------------------------------------------------------------------------------------
# Returns, advantages, incremental rewards
# ---------------------------------------------------------------------------------------------
def test_returns_and_advantages_by_hand():
    rewards = torch.tensor([[0.0, 0.5, 1.0], [2.0, 9.0, 9.0]])  # row 1 has one real token; 9s are padding
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    returns = a2c.discounted_returns(rewards, mask, discount=0.9)
    # G_2 = 1; G_1 = 0.5 + 0.9 * 1 = 1.4; G_0 = 0 + 0.9 * 1.4 = 1.26
    assert torch.allclose(returns, torch.tensor([[1.26, 1.4, 1.0], [2.0, 0.0, 0.0]]))
    values = torch.tensor([[0.2, 0.4, 0.6], [1.0, 5.0, 5.0]], requires_grad=True)
    adv = a2c.advantages(returns, values, mask)
    assert torch.allclose(adv, torch.tensor([[1.06, 1.0, 0.4], [1.0, 0.0, 0.0]]))
    assert not adv.requires_grad  # the critic is not trained through the advantage
    whitened = a2c.advantages(returns, values, mask, normalize=True)
    real = whitened[mask.bool()]
    assert abs(real.mean().item()) < 1e-5 and abs(real.std().item() - 1) < 1e-3


def test_returns_without_discount_are_reward_to_go():
    rewards = torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    returns = a2c.discounted_returns(rewards, torch.ones(1, 4), discount=1.0)
    assert torch.allclose(returns, torch.tensor([[2.5, 1.5, 3.5, 0.5]]))


def test_incremental_rewards_telescope_to_the_final_reward():
    prefix_values = [0.1, 0.35, -0.2, 0.7]  # R(T_k) at the evaluated prefixes
    ends = [2, 3, 5, 7]
    r = a2c.incremental_rewards(prefix_values, ends, 7)
    assert r.shape == (7,) and r.sum() == pytest.approx(0.7)
    assert np.allclose(r, [0, 0.1, 0.25, 0, -0.55, 0, 0.9])
    returns = a2c.discounted_returns(torch.from_numpy(r)[None].float(), torch.ones(1, 7), discount=1.0)
    assert returns[0, 0].item() == pytest.approx(0.7)  # G_0 = R(T) with γ = 1


def test_prefix_ends_at_word_boundaries():
    pieces = {1: "Action", 2: ":", 3: " Move", 4: " forward", 5: ";", 6: " Reason", 9: ""}
    dec = lambda ids: "".join(pieces[i] for i in ids)  # noqa: E731
    ids = [1, 2, 3, 4, 5, 6, 9]
    assert a2c.prefix_ends(ids, dec, "word") == [2, 3, 5, 7]  # "Action:", "Action: Move", "...forward;", end
    assert a2c.prefix_ends(ids, dec, "token") == list(range(1, 8))
    assert a2c.prefix_ends([], dec) == []


def test_incremental_step_rewards_sum_to_terminal_reward():
    """In a real step: per-token incremental rewards of each completion sum to R(final text)."""
    def length_reward(completions, **batch):
        return [len(t.split()) / 5 for t in completions]

    t = trainer(reward=WeightedReward({"len": (1.0, length_reward)}), reward_mode="incremental", prefix_every="word")
    roll = a2c.rollout(t.model, None, make_inputs(clips(4)), max_new_tokens=6, eos_ids=[EOS], pad_id=PAD,
                      generator=torch.Generator().manual_seed(0))
    rewards, info = t.token_rewards(roll, {"file_name": ["a", "b", "c", "d"]})
    texts = a2c.completion_texts(roll.tokens, roll.mask, decode)
    assert torch.allclose(rewards.sum(1), torch.tensor([len(x.split()) / 5 for x in texts]))
    assert info["reward"] == pytest.approx(np.mean([len(x.split()) / 5 for x in texts]))


# ---------------------------------------------------------------------------------------------
# Value head, rollouts
# ---------------------------------------------------------------------------------------------
def test_value_head_shapes_and_saving(tmp_path):
    head = a2c.ValueHead(32, width=16)
    h = torch.randn(3, 5, 32)
    assert head(h).shape == (3, 5)
    assert head(h[:, 0]).shape == (3,)
    assert torch.all(head(h) == 0)  # starts at V = 0
    torch.nn.init.normal_(head.net[-1].weight)
    head.save(tmp_path)
    again = a2c.ValueHead.load(tmp_path)
    assert torch.allclose(again(h), head(h))


def test_a_fresh_value_head_comes_from_the_run_seed():
    model = tiny_policy()
    heads = [trainer(model, seed=s).value_head.state_dict() for s in (0, 0, 1)]
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
    assert not torch.equal(heads[0]["net.0.weight"], heads[2]["net.0.weight"])


@pytest.mark.parametrize("top_k, top_p", [(0, 1.0), (5, 0.9)])
def test_rollout_logprobs_match_a_teacher_forced_forward(top_k, top_p):
    model = tiny_policy()
    head = a2c.ValueHead(32, 16)
    torch.nn.init.normal_(head.net[-1].weight)
    roll = a2c.rollout(model, head, make_inputs(clips(4)), max_new_tokens=6, eos_ids=[EOS], pad_id=PAD,
                      temperature=0.8, top_k=top_k, top_p=top_p, generator=torch.Generator().manual_seed(0))
    assert roll.tokens.shape == roll.mask.shape == roll.logprobs.shape == roll.values.shape == (4, roll.tokens.shape[1])
    assert not (roll.tokens == IMAGE).any()  # the image token is never sampled
    logp, entropy, values, _ = a2c.score_tokens(model, head, roll.prompt, roll.tokens, roll.mask, temperature=0.8,
                                            top_k=top_k, top_p=top_p)
    m = roll.mask
    assert torch.allclose(logp[m], roll.logprobs[m], atol=1e-5)
    assert torch.allclose(entropy[m], roll.entropy[m], atol=1e-4)
    assert torch.allclose(values[m], roll.values[m], atol=1e-5)
    if top_k:  # log-probs of the cut distribution the tokens were drawn from
        full = a2c.score_tokens(model, head, roll.prompt, roll.tokens, roll.mask, temperature=0.8).logp
        assert (logp[m] >= full[m] - 1e-6).all() and (entropy[m] <= math.log(top_k) + 1e-5).all()


def test_greedy_batched_rollout_matches_generate_and_single_rows():
    model = tiny_policy().eval()
    items = clips(3)
    inputs = make_inputs(items, extra_text=[0, 2, 4])  # left-padded prompts of different lengths
    batched = a2c.rollout(model, None, inputs, max_new_tokens=6, eos_ids=[EOS], pad_id=PAD, temperature=0)
    for i in range(3):
        single = make_inputs(items[i:i + 1], extra_text=[[0, 2, 4][i]])
        alone = a2c.rollout(model, None, single, max_new_tokens=6, eos_ids=[EOS], pad_id=PAD, temperature=0)
        reference = model.generate(**single, max_new_tokens=6, do_sample=False, eos_token_id=EOS, pad_token_id=PAD,
                                   suppress_tokens=[IMAGE])[0, single["input_ids"].shape[1]:]
        n = int(alone.mask[0].sum())
        assert alone.tokens[0, :n].tolist() == reference[:n].tolist()
        assert batched.tokens[i, :n].tolist() == alone.tokens[0, :n].tolist()


def test_top_k_and_top_p_sampling_stay_in_the_nucleus():
    logits = torch.tensor([[3.0, 2.9, 0.0, -1.0, -2.0]]).repeat(200, 1)
    tokens = a2c.sample_tokens(logits, temperature=1.0, top_p=0.5, generator=torch.Generator().manual_seed(0))
    assert set(tokens.tolist()) <= {0, 1}
    tokens = a2c.sample_tokens(logits, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(0))
    assert set(tokens.tolist()) == {0, 1, 2}
    assert a2c.sample_tokens(logits[:1], temperature=0, top_p=1.0).item() == 0


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def test_trivial_reward_rises():
    """+1 for emitting one chosen token: the mean reward climbs within a few dozen steps."""
    t = trainer(steps=30)
    log = t.train(progress=False)
    assert not log["skipped"].any()
    first, last = log["reward"].head(5).mean(), log["reward"].tail(5).mean()
    assert last > first + 0.3 and last >= 0.7, log["reward"].tolist()


def low_tokens(completions, **batch):
    return [sum(int(w[1:]) < 20 for w in text.split()) / 5 for text in completions]


def test_only_lora_and_value_head_update():
    t = trainer(reward=WeightedReward({"low": (1.0, low_tokens)}))
    frozen = {n: p.detach().clone() for n, p in t.model.named_parameters() if "lora_" not in n}
    lora = {n: p.detach().clone() for n, p in t.model.named_parameters() if "lora_B" in n}
    head = [p.detach().clone() for p in t.value_head.parameters()]
    for _ in range(3):
        assert not t.step()["skipped"]
    after = dict(t.model.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in frozen.items())
    assert any(not torch.equal(after[n], p) for n, p in lora.items())
    assert any(not torch.equal(a, b) for a, b in zip(t.value_head.parameters(), head))
    assert {id(p) for g in t.optimizer.param_groups for p in g["params"]} == \
        {id(p) for p in t.policy_params} | {id(p) for p in t.value_head.parameters()}



def test_critic_warmup_trains_the_value_head_alone():
    """During the warm-up the LoRA weights stay put and V moves toward the returns; then both learn."""
    t = trainer(reward=WeightedReward({"low": (1.0, low_tokens)}), critic_warmup=3)
    lora = {n: p.detach().clone() for n, p in t.model.named_parameters() if "lora_" in n}
    head = [p.detach().clone() for p in t.value_head.parameters()]
    rows = [t.step() for _ in range(3)]
    assert all(r["warmup"] and not r["skipped"] for r in rows)
    assert all(torch.equal(p, lora[n]) for n, p in t.model.named_parameters() if "lora_" in n)
    assert any(not torch.equal(a, b) for a, b in zip(t.value_head.parameters(), head))
    assert rows[-1]["value_loss"] < rows[0]["value_loss"]
    row = t.step()
    assert not row["warmup"] and not row["skipped"]
    assert any(not torch.equal(p, lora[n]) for n, p in t.model.named_parameters() if "lora_" in n)


def test_a_new_run_replaces_an_old_log(tmp_path):
    for steps in (3, 2):
        trainer(run_dir=tmp_path, steps=steps).train(progress=False)
    assert (tmp_path / a2c.LOG_FILE).read_text().count("\n") == 2

def test_single_pass_equals_two_pass():
    """Gradients from the rollout's own graph equal those of the teacher-forced forward."""
    rows = []
    for single in (False, True):
        t = trainer(model=tiny_policy(seed=3), reward=WeightedReward({"low": (1.0, low_tokens)}),
                    single_pass=single, reward_mode="incremental")
        rows.append(t.step())
    for key in ("reward", "policy_loss", "value_loss", "entropy", "grad_norm"):
        assert rows[0][key] == pytest.approx(rows[1][key], rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("top_k", [0, 5])
def test_kl_to_the_base_policy_starts_at_zero(top_k):
    t = trainer(reward=WeightedReward({"low": (1.0, low_tokens)}), kl_coef=0.1, top_k=top_k)  # LoRA starts as the identity, so π = π_ref at the first step
    row = t.step()
    assert not row["skipped"] and row["kl"] == pytest.approx(0.0, abs=1e-6)
    for _ in range(3):
        row = t.step()
    assert row["kl"] > 0


def test_each_reward_term_logs_its_mean_and_spread():
    """A term whose spread is 0 over the batch is saturated (no learning signal); the log shows it."""
    const = lambda completions, **batch: [0.5] * len(completions)  # noqa: E731
    row = trainer(reward=WeightedReward({"hit": (1.0, hit), "const": (1.0, const)})).step()
    assert row["reward_const"] == 0.5 and row["spread_const"] == 0.0
    assert row["spread_hit"] == pytest.approx(np.sqrt(row["reward_hit"] * (1 - row["reward_hit"])))  # std of 0/1 scores


def test_nan_rewards_are_caught_and_logged():
    def sometimes_nan(completions, **batch):
        return [math.nan if i % 2 else 1.0 for i in range(len(completions))]

    t = trainer(reward=WeightedReward({"r": (1.0, sometimes_nan)}))
    rows = [t.step() for _ in range(2)]
    assert all(not r["skipped"] for r in rows)
    assert all(r["nonfinite"] > 0 and math.isfinite(r["loss"]) for r in rows)
    assert all(math.isfinite(p.sum().item()) for p in t.policy_params)


def test_a_bad_batch_never_kills_the_loop():
    calls = {"n": 0}

    def flaky(completions, **batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("reward server hiccup")
        return [1.0] * len(completions)

    t = trainer(reward=WeightedReward({"r": (1.0, flaky)}), steps=4)
    log = t.train(progress=False)
    assert len(log) == 4 and log["skipped"].tolist() == [False, True, False, False]
    assert "hiccup" in log.loc[1, "error"]

    def broken(completions, **batch):
        raise ValueError("always broken")

    t = trainer(reward=WeightedReward({"r": (1.0, broken)}), max_failures=3, steps=10)
    with pytest.raises(RuntimeError, match="3 consecutive"):
        t.train(progress=False)
    assert len(t.log) == 3


def test_checkpoint_and_resume_continue_the_same_run(tmp_path):
    reward = WeightedReward({"low": (1.0, low_tokens)})
    straight = trainer(model=tiny_policy(seed=5), reward=reward, steps=4)
    straight.train(progress=False)

    first = trainer(model=tiny_policy(seed=5), reward=reward, run_dir=tmp_path, steps=4, checkpoint_every=1,
                    keep_checkpoints=1)
    first.train(steps=2, progress=False)
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-000002"]
    saved = tmp_path / "checkpoint-000002"
    assert (saved / "adapter_model.safetensors").is_file() and (saved / a2c.VALUE_HEAD_WEIGHTS).is_file()

    resumed = trainer(model=tiny_policy(seed=5), reward=reward, run_dir=tmp_path, steps=4, checkpoint_every=1,
                      keep_checkpoints=1)
    assert resumed.resume() and resumed.step_count == 2
    log = resumed.train(progress=False)
    assert log["step"].tolist() == [1, 2, 3, 4]
    expected = straight.log_frame()
    for key in ("reward", "policy_loss", "value_loss"):
        assert np.allclose(log[key], expected[key], rtol=1e-4, atol=1e-6), key
    assert (tmp_path / a2c.LOG_FILE).read_text().count("\n") == 4


def test_reward_panel_trains_and_redraws():
    import matplotlib

    matplotlib.use("Agg")
    from drivekit.course import widgets

    calls = []

    def run(**settings):
        calls.append(settings)
        steps = settings["steps"]
        return pd.DataFrame({"step": range(1, steps + 1), "reward": np.linspace(0, settings["weights"]["r1"], steps),
                             "value_loss": 0.1, "policy_loss": 0.0, "entropy": 1.0, "kl": 0.0, "skipped": False})

    panel = widgets.reward_panel(run, weights={"r1": 0.5, "r2": 1.0}, discount=0.9, lr=1e-3, steps=4)
    fig = panel.train()
    assert calls == [dict(weights={"r1": 0.5, "r2": 1.0}, discount=0.9, lr=pytest.approx(1e-3), steps=4)]
    assert fig.axes and len(panel.logs) == 1
    panel.shares["r2"].value, panel.steps.value = 0.5, 3  # shares 0.5 and 0.5 of the scale, 1.5
    panel.button.click()  # what a click does: train with the sliders' values and redraw
    assert calls[-1]["weights"] == {"r1": 0.75, "r2": 0.75} and calls[-1]["steps"] == 3 and len(panel.logs) == 2
    json_panel = widgets.reward_panel(run, weights={"r1": 1.0, "r2": 1.0, "r3": 0.5}, steps=2)  # the JSON stage's
    json_panel.train()
    assert calls[-1] == dict(weights={"r1": 1.0, "r2": 1.0, "r3": 0.5}, lr=pytest.approx(2e-4), steps=2)


def probe_row(name, text, actions, reasons):
    from drivekit.evaluation.reports import prediction_row

    return prediction_row(name, text, actions, reasons)


class ProbedRuns:
    """A stand-in for a2c_stage.ShortRuns: an estimate, and runs that fix one probe answer out of three."""

    def __init__(self, capsys):
        from drivekit.text.formats import parse_text

        self.capsys, self.calls, self.printed = capsys, [], []
        go, stop = "Action: Move forward; Reason: Road is clear", "Action: Stop/Slow down; Reason: Traffic light"
        truth = [(name, parse_text(text).actions, parse_text(text).reasons)
                 for name, text in [("a.jpg", go), ("b.jpg", stop), ("c.jpg", stop)]]
        self.before = [probe_row(n, t, a, r) for (n, a, r), t in zip(truth, [go, go, stop])]
        self.after = [probe_row(n, t, a, r) for (n, a, r), t in zip(truth, [go, stop, stop])]

    def estimate(self, steps):
        from drivekit.stages import a2c_stage

        return a2c_stage.Estimate(steps, per_step=0.5, probe=2.0, clips=3, basis="a test")

    def __call__(self, **settings):
        from drivekit.stages import a2c_stage

        self.printed.append(self.capsys.readouterr().out)  # what the panel showed before the run started
        self.calls.append(settings)
        steps = settings["steps"]
        log = pd.DataFrame({"step": range(1, steps + 1), "reward": 0.5, "value_loss": 0.1, "policy_loss": 0.0,
                            "entropy": 1.0, "kl": 0.0, "skipped": False})
        return a2c_stage.ShortRun(log, self.before, self.after, steps, train_seconds=0.5 * steps, probe_seconds=2.0)


def test_training_panel_estimates_then_shows_f1_and_the_changed_answers(capsys):
    import matplotlib

    matplotlib.use("Agg")
    from drivekit.course import widgets

    runs = ProbedRuns(capsys)
    panel = widgets.reward_panel(runs, weights={"r1": 1.0, "r2": 1.0}, lr=1e-4)
    assert panel.steps.value == widgets.PANEL_STEPS  # the measured default length
    panel.train()
    assert runs.calls[-1]["steps"] == widgets.PANEL_STEPS
    assert f"estimated time: about {widgets.PANEL_STEPS * 0.5 + 2:.0f} s" in runs.printed[-1]  # before it trained
    shown = capsys.readouterr().out
    assert "F1_act" in shown and "1 of 3 probe answers changed in the last run" in shown and "b.jpg" in shown
    assert list(panel.scores.index) == ["start (before any run)", f"#1 r1=1 r2=1 lr=1e-04 steps={widgets.PANEL_STEPS}"]
    start, run = panel.scores.iloc[0], panel.scores.iloc[1]
    assert start["F1_act"] == pytest.approx(2 / 3) and run["F1_act"] == pytest.approx(1.0)
    assert run["ΔF1_act"] == pytest.approx(1 / 3) and run["ΔF1_rsn"] == pytest.approx(1 / 3)
    assert (run["changed"], run["better"], run["worse"]) == (1, 1, 0)
    assert panel.changed[["clip", "before", "after"]].values.tolist() == [
        ["b.jpg", "Action: Move forward; Reason: Road is clear", "Action: Stop/Slow down; Reason: Traffic light"]]
    assert panel.changed["truth"].tolist() == ["Action: Stop/Slow down; Reason: Traffic light"]
    assert panel.changed["ΔF1"].tolist() == [pytest.approx(1.0)]

    panel.steps.value = 7  # the slider, or steps= to reward_panel, overrides the default
    panel.train()
    assert runs.calls[-1]["steps"] == 7 and len(panel.scores) == 3  # earlier runs' rows stay
    assert widgets.reward_panel(runs, steps=5).steps.value == 5


def test_the_panels_default_length_is_the_measured_one():
    """widgets.PANEL_STEPS is what benchmarks/bench_training_panel.py measured from a clean tree: the shortest
    click that fixed more probe answers than it broke in every seed."""
    import json
    from pathlib import Path

    from drivekit.course import widgets

    measured = json.loads((Path(__file__).parent.parent / "benchmarks" / "results" / "training_panel.json").read_text())
    assert measured["clean"] and widgets.PANEL_STEPS == measured["results"]["shortest_gaining"]
    at_default = next(s for s in measured["results"]["lengths"] if s["steps"] == widgets.PANEL_STEPS)
    assert all(b > w for b, w in zip(at_default["better"], at_default["worse"])) and at_default["seeds"] >= 3


def test_short_runs_answer_the_probe_before_and_after_and_time_themselves(saved):
    """A2C short runs on the micro model through the panel: the probe is answered at the start once, and
    the second estimate uses the first run's timing."""
    import matplotlib

    matplotlib.use("Agg")
    from drivekit.stages import a2c_stage
    from drivekit.core import config
    from drivekit.course import widgets
    from drivekit.rewards.action_reward import action_reward
    from drivekit.models.vlm import LoraSettings, load_vlm
    from drivekit.rewards.structure_reward import structure_reward

    from micro import items

    path, _ = saved
    model, processor = load_vlm(path, quantize_4bit=True, lora=LoraSettings(r=4), device="cpu", seed=3)
    reward = WeightedReward({"r2": (1.0, action_reward("label_f1"))})
    settings = a2c.A2CSettings(batch_size=4, max_new_tokens=6, lr=5e-2, temperature=1.0)
    cfg = config.load(profile="tiny")
    unknown = a2c_stage.ShortRuns(cfg, (model, processor, None), items(4), reward, items(3, seed=1), settings=settings)
    assert unknown.estimate(10) is None and unknown.before is None  # no speed known: no estimate, nothing computed
    runs = a2c_stage.ShortRuns(cfg, (model, processor, None), items(4), reward, items(3, seed=1), settings=settings,
                               progress=False, seconds_per_step=0.25, timing="a test's guess")
    first_guess = runs.estimate(10)  # the given speed, and the start's answers computed and timed for the probe's part
    assert runs.target == "plain" and len(runs.before) == 3 and runs.start_seconds > 0
    assert first_guess.per_step == 0.25 and first_guess.probe == runs.start_seconds
    assert first_guess.seconds == pytest.approx(2.5 + runs.start_seconds) and "(a test's guess)" in str(first_guess)
    panel = widgets.reward_panel(runs, weights=reward.weights, lr=5e-2, steps=2)
    panel.train()
    first = runs.history[-1]
    assert len(first.before) == len(first.after) == 3 and first.steps == 2 and first.train_seconds > 0
    assert len(panel.scores) == 2 and {"F1_act", "F1_rsn", "changed"} <= set(panel.scores.columns)
    again = runs.estimate(4)
    assert again.per_step == pytest.approx(first.train_seconds / 2) and again.probe == first.probe_seconds
    assert "timed on the 1 earlier run)" in str(again)
    runs(steps=1)
    assert runs.history[-1].before is first.before  # the start's answers are computed once
    json_reward = WeightedReward({"r2": (1.0, action_reward("label_f1")), "r3": (1.0, structure_reward)})
    assert a2c_stage.ShortRuns(cfg, (model, processor, None), items(2), json_reward, items(1),
                               settings=settings).target == "json"


def test_batches_are_seeded_by_step_and_can_repeat_clips():
    t = trainer(batch_size=8, samples_per_clip=4)
    names = [item["file_name"] for item in t.batch(0)]
    assert len(names) == 8 and len(set(names)) == 2 and names[:4] == [names[0]] * 4
    assert [i["file_name"] for i in t.batch(3)] == [i["file_name"] for i in trainer(batch_size=8, samples_per_clip=4).batch(3)]
    epoch = [i for step in range(4) for i in a2c.batch_indices(16, 4, step, seed=0)]
    assert sorted(epoch) == list(range(16))  # one pass over the clips per epoch


def test_a_linear_lr_schedule_falls_to_zero_and_resumes_on_it(tmp_path):
    """``lr_schedule="linear"``: the LoRA lr of step k is lr · (1 − k / steps); the critic's stays;
    a run resumed from a checkpoint goes on down the same line."""
    t = trainer(steps=4, lr=1e-3, lr_schedule="linear")
    log = t.train(progress=False)
    assert log["lr"].tolist() == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    assert t.optimizer.param_groups[1]["lr"] == t.settings.value_lr
    trainer(steps=4, lr=1e-3, lr_schedule="linear", run_dir=tmp_path, checkpoint_every=2).train(steps=2, progress=False)
    resumed = trainer(steps=4, lr=1e-3, lr_schedule="linear", run_dir=tmp_path, checkpoint_every=2)
    assert resumed.resume() and resumed.step_count == 2
    assert resumed.step()["lr"] == pytest.approx(5e-4)
    assert trainer(steps=4).step()["lr"] == trainer().settings.lr  # constant by default
    with pytest.raises(ValueError, match="lr_schedule must be .constant. or .linear."):
        trainer(lr_schedule="cosine")
