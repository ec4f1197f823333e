"""Smoke test of the benchmark suite: every benchmark runs at minimal sizes and reports well-formed, finite timings.

No timing thresholds: machines are noisy. This only keeps ``python -m benchmarks`` from rotting as the code moves.
"""

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

pytest.importorskip("cv2")

from benchmarks import report
from benchmarks.common import ModelSize, machine
from benchmarks.speed import gpu, realsize, rewards, rollout, scaling, training
from benchmarks.validation import trajectory as trajectory_validation
from world_r1.policy import VideoSpec
from world_r1.rewards import EpipolarReward

TINY = ModelSize(layers=1, heads=2, head_dim=8, ffn_dim=16, text_dim=16, text_tokens=8)
SPEC = VideoSpec(height=32, width=32, num_frames=5)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as ``python -m benchmarks`` uses: on a busy machine more threads make tiny runs crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _check(result: dict, seconds: tuple[str, ...]) -> None:
    for name in seconds:
        assert math.isfinite(result["seconds"][name]) and result["seconds"][name] > 0, name
    for label, fig in result["figures"].items():
        assert {"value", "unit"} <= set(fig), label
        assert fig["value"] is None or math.isfinite(fig["value"]), label


def test_rollout_benchmark():
    result = rollout.run(TINY, SPEC, batch=1, steps=2, repeats=1)
    _check(result, ("ours", "diffusers", "diffusers_base", "cfg_batched", "cfg_split"))
    assert "met" in result["figures"]["rollout: ours / diffusers (same LoRA model)"]


def test_training_benchmark():
    result = training.run(TINY, SPEC, batch=1, steps=3, window=2, repeats=1)
    _check(result, ("cfg_forward", "trained_step", "trained_step_checkpointed", "iteration_fast", "iteration_full"))


def test_rewards_benchmark():
    result = rewards.run(batch=1, num_frames=5, size=64, repeats=1, names=("EpipolarReward",))
    _check(result, ("opencv", "kornia_naive"))
    assert result["figures"]["OpenCV baseline: videos/s"]["value"] > 0
    for name in set(result["seconds"]) - {"opencv", "kornia_naive"}:
        assert result["seconds"][name] > 0, name
    if "EpipolarReward" in result["seconds"]:
        for variant in (rewards.FAST, rewards.CORNERS):  # timed in the same run
            assert result["figures"][f"{variant}: speed vs OpenCV"]["value"] > 0, variant
        assert {"sift: detection (batched)", "corners: detection (batched)"} <= set(result["stages_s"])
        assert result["profile"][0]["tottime_s"] >= 0


def test_scaling_benchmark():
    result = scaling.run(TINY, grid=((5, 32, 32),), steps=2, repeats=1)
    (row,) = result["rows"]
    assert row["frames"] == 5 and row["tokens"] == 2 * 2 * 2
    assert row["rollout s"] > 0 and math.isfinite(row["step / CFG fwd"])


def test_gpu_benchmark_code_path_on_cpu():
    """The CUDA benchmark's code, run on CPU at a tiny size so it is exercised without a GPU."""
    result = gpu.run("cpu", TINY, SPEC, steps=2, dtype=torch.float32, repeats=1, peak_flops=None)
    _check(result, ("rollout", "rollout_diffusers", "trained_step", "trained_step_checkpointed"))
    assert result["figures"]["rollout MFU"]["value"] is None


def test_flops_of_the_real_model():
    """Wan2.1-1.3B at 832x480x81 (32,760 tokens): about 2.8e14 FLOPs per sample forward, mostly attention."""
    _, t, h, w = gpu.WAN_480P_81.latent_shape()
    flops = gpu.forward_flops(gpu.WAN_1_3B, t * (h // 2) * (w // 2))
    assert 1e14 < flops.total < 1e15 and flops.attention > flops.linear


def test_report_and_json(tmp_path):
    results = {
        "machine": machine(),
        "benchmarks": {
            "x": {"figures": {"r": report.figure(float("inf"), "x", goal="<= 1", met=False)}},
            "grid": {"figures": {}, "rows": [{"frames": 9, "s": 0.5}]},
            "gpu": {"skipped": "no CUDA device"},
        },
        "seconds": {"total": 1.0},
    }
    report.print_results(results)
    path = report.write_json(results, tmp_path / "r.json")
    assert '"value": null' in path.read_text()
    table = report.markdown(results)
    assert "| x | r | - | <= 1 | **no** |" in table and "| 9 | 0.5 |" in table and "skipped" in table
    assert results["machine"]["cpu_cores"] >= 1 and results["machine"]["torch"]


def test_miniature_variants_edit_the_shipped_config_and_the_report_reads_its_results(tmp_path):
    """Each ablation switches off what its name says in configs/mini.yaml (the full benchmark trains them all: too
    long for CI), and a results dict renders to Markdown and a PNG."""
    import yaml

    from benchmarks.experiments import miniature

    shipped = yaml.safe_load(miniature.CONFIG.read_text())
    edited = {}
    for name, edit in miniature.EDITS.items():
        config = yaml.safe_load(miniature.CONFIG.read_text())
        edit.edit(config)
        edited[name] = config
    assert edited["world-r1"] == shipped
    assert shipped["model"]["camera"]["enabled"] and not edited["no-noise-warping"]["model"]["camera"]["enabled"]
    assert shipped["data"]["decoupled_steps"] > 0 and edited["no-decoupled-phase"]["data"]["decoupled_steps"] == 0
    for term in ("epipolar", "depth", "trajectory", "motion"):
        assert shipped["model"]["reward"]["weights"][term] > 0
        assert edited[f"no-{term}"]["model"]["reward"]["weights"][term] == 0
        alone = edited[f"only-{term}"]
        assert {name for name, weight in alone["model"]["reward"]["weights"].items() if weight > 0} == {term}
        assert alone["data"]["decoupled_steps"] == 0
    controlled = edited.pop("motion-controlled")
    term, key = controlled["model"]["grpo"].pop("control_covariate").split("/")
    assert controlled == shipped and key in EpipolarReward().worst and term == "epipolar"  # a key the step scores
    probes = (
        ("low-noise", "sampling", "noise_level"),
        ("small-step", "grpo", "lr"),
        ("full-sde", "sampling", "sde_window"),
    )
    for name, section, key in probes:
        changed = edited.pop(name)
        assert changed["model"][section][key] < shipped["model"][section][key]  # full-sde: 0, every step an SDE step
        changed["model"][section][key] = shipped["model"][section][key]
        assert changed == shipped  # its one setting only
    paper = [f"no-{thing}" for thing in ("noise-warping", "decoupled-phase", *miniature.TERMS)]
    assert paper == miniature.PAPER_ABLATIONS  # what runs by default; the others when named

    base = torch.tensor([0.5, 0.4, 0.6, 0.5])
    values = {key: base for _, key, _ in miniature.METRICS}
    stats = {key: miniature.paired_difference(values[key], values[key] + 0.1) for key in values}
    verdict = miniature.verdict(stats)
    assert not verdict["epipolar/sampson_px better by 4 SE"]  # higher Sampson error is worse
    assert verdict["epipolar/inlier_ratio better by 4 SE"] and not verdict["no freezing"]  # frozen share +0.1 too
    run = {"name": "world-r1 seed 0", "variant": "world-r1", "seed": 0, "stats": stats, "verdict": verdict}
    run["curve"] = [{"step": 0, "epipolar/inlier_ratio": 0.5}, {"step": 10, "epipolar/inlier_ratio": 0.6}]
    results = {
        "machine": machine(),
        "settings": {"prompts": 2, "eval_seeds": 2, "steps": 10},
        "calibration": {"threshold": 0.6, "balanced_accuracy": 0.9, "clips": 8, "consistent_mean": 0.8},
        "base": {key: 0.5 for key in values},
        "runs": [run],
        "seconds": 60.0,
    }
    results["calibration"]["inconsistent_mean"] = 0.4
    text = miniature.markdown(results)
    assert "| base |" in text and "| world-r1 seed 0 | +0.100 (+" in text and "Partial" not in text
    # a trained mean over its own valid videos above the base's, yet lower on the videos both measure: a change
    lost = miniature.paired_difference(torch.tensor([0.9, 0.5, 0.1]), torch.tensor([0.8, 0.3, math.nan]))
    assert lost["trained"] > float(torch.tensor([0.9, 0.5, 0.1]).mean())
    changed = results | {"runs": [run | {"stats": stats | {"epipolar/inlier_ratio": lost}}]}
    assert "| world-r1 seed 0 | -0.150 (-3.0) |" in miniature.markdown(changed)
    assert "| reference |" not in text
    references = {"renders, rigid (5 clips)": {key: 0.9 for key in values}}
    only_base = miniature.markdown(results | {"runs": [], "references": references})
    assert "| renders, rigid (5 clips) | 0.900 |" in only_base and "| run | goal met |" not in only_base
    partial = results | {"complete": False, "settings": results["settings"] | {"plan": [("world-r1", 0)] * 3}}
    assert "Partial: 1 of the 3 planned runs measured." in miniature.markdown(partial)
    assert "Every run edits" not in text
    other = results | {"settings": results["settings"] | {"config": "configs/mine.yaml"}}
    assert "Every run edits `configs/mine.yaml`, not `configs/mini.yaml`." in miniature.markdown(other)
    videos = torch.rand(3, 5, 3, 16, 16)
    path = miniature.figure(results, {"base": videos, "world-r1": videos}, ["a.", "b.", "c."], tmp_path / "m.png")
    assert path.stat().st_size > 1000
    base_only = miniature.figure(results | {"runs": []}, {"base": videos}, ["a.", "b.", "c."], tmp_path / "b.png")
    with Image.open(path) as full, Image.open(base_only) as strip:  # no runs: frame strips only, no empty axes
        assert strip.width == full.width and strip.height < full.height / 3


def test_miniature_measures_the_shipped_mini_wan_unless_told_otherwise(tmp_path):
    from benchmarks.experiments import miniature
    from world_r1.policy.loading import BUILTIN_MODELS

    assert miniature.model_dir("builtin:mini-wan") == BUILTIN_MODELS["mini-wan"].resolve()
    assert (miniature.model_dir("builtin:mini-wan") / "model_index.json").is_file()
    with pytest.raises(SystemExit, match="Unknown built-in model 'builtin:giant'"):
        miniature.model_dir("builtin:giant")
    with pytest.raises(SystemExit, match=r"No mini model at .*make mini-model"):
        miniature.model_dir(str(tmp_path))


def test_miniature_consistency_threshold_is_the_best_separating_inlier_ratio():
    from benchmarks.experiments import miniature

    ratio = torch.tensor([0.9, 0.8, 0.75, 0.3, 0.5, 0.7])
    rigid = torch.tensor([True, True, True, False, False, False])
    separated = miniature.consistency_threshold(ratio, rigid)
    assert separated["threshold"] == pytest.approx(0.75) and separated["balanced_accuracy"] == 1.0
    assert separated["consistent_mean"] == pytest.approx(0.8167, abs=1e-3) and separated["clips"] == 6
    overlapping = miniature.consistency_threshold(torch.tensor([0.9, 0.4, 0.6, 0.5]), torch.tensor([1, 1, 0, 0]) > 0)
    assert overlapping["balanced_accuracy"] == 0.75 and overlapping["threshold"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="rigid and inconsistent"):  # one kind only: no threshold to calibrate
        miniature.consistency_threshold(ratio[:3], rigid[:3])


def test_miniature_calibrates_on_both_kinds_of_render_for_a_base_trained_on_rigid_clips_only(tmp_path):
    """A base trained with ``inconsistent_share: 0`` is still judged by a threshold between rigid and inconsistent
    renders (else every render is rigid and the threshold meaningless)."""
    import json

    from benchmarks.experiments import miniature
    from world_r1.pretrain.manifest import MANIFEST_NAME

    world = {"height": 32, "width": 32, "num_frames": 5, "inconsistent_share": 0.0, "seed": 0}
    stages = [{"stage": "transformer", "data": {"train": {"config": world}}}]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"stages": stages}))
    videos, prompts, rigid = miniature.world_renders(tmp_path, clips=12)
    assert videos.shape == (12, 5, 3, 32, 32) and len(prompts) == 12
    assert rigid.any() and not rigid.all()


def test_miniature_freezing_is_judged_against_the_motion_the_camera_words_induce():
    """A video moving less than half of what its camera induces is frozen; still cameras and unmeasured videos are
    not judged; a run whose frozen share rises beyond 2 standard errors fails the goal, whatever its 3D scores."""
    from benchmarks.experiments import miniature

    raw = {
        "epipolar/inlier_ratio": torch.tensor([0.8, 0.7, 0.4, 0.9]),
        "epipolar/degenerate": torch.tensor([0.0, 0.0, 0.0, 1.0]),
        "trajectory/motion_ratio": torch.tensor([1.0, 0.3, 0.2, 0.9]),
        "trajectory/static_expected": torch.tensor([0.0, 0.0, 1.0, 0.0]),
        "trajectory/degenerate": torch.tensor([0.0, 0.0, 0.0, 1.0]),
    }
    values = miniature.with_consistency(raw, threshold=0.6)
    assert values["consistent"].tolist() == [1.0, 1.0, 0.0, 0.0] and values["frozen"][:2].tolist() == [0.0, 1.0]
    assert values["frozen"][2:].isnan().all()

    generator = torch.Generator().manual_seed(0)
    base = {key: torch.rand(40, generator=generator) for _, key, _ in miniature.METRICS}
    base["frozen"] = torch.zeros(40)
    gain = 0.5 + 0.1 * torch.rand(40, generator=generator)
    trained = {key: base[key] + gain * sign for _, key, sign in miniature.METRICS}  # every 3D metric far better
    trained["frozen"] = (torch.arange(40) % 2).float()  # but half the videos newly frozen
    verdict = miniature.verdict({key: miniature.paired_difference(base[key], trained[key]) for key in base})
    assert all(ok for name, ok in verdict.items() if "better by" in name) and not verdict["no freezing"]
    trained["frozen"] = base["frozen"]
    assert miniature.verdict({key: miniature.paired_difference(base[key], trained[key]) for key in base})["no freezing"]


@pytest.mark.slow  # a benchmark run: seconds of rendering and analysis
def test_miniature_round_trip_keeps_renders_through_the_shipped_mini_vae():
    """The "through the VAE" reference decodes what the model's VAE encodes, with the latent normalisation the policy
    samples in (a wrong mean or scale would not come back near the render)."""
    from benchmarks.experiments import miniature
    from world_r1.policy.loading import BUILTIN_MODELS

    model = BUILTIN_MODELS["mini-wan"]
    videos, prompts, rigid = miniature.world_renders(model, clips=2)
    assert videos.shape == (2, 9, 3, 128, 128) and len(prompts) == 2 and rigid.dtype == torch.bool
    evaluator = miniature.Evaluator(miniature.CONFIG, model, prompts, seeds=[0])
    decoded = evaluator.round_trip(videos)
    vae = evaluator.module.policy.vae
    with torch.no_grad():  # the VAE's own round trip, in its unnormalised latent space
        plain = vae.decode(vae.encode(videos.permute(0, 2, 1, 3, 4) * 2 - 1).latent_dist.mode()).sample
    assert torch.allclose(decoded, ((plain + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4), atol=1e-4)
    psnr = -10 * torch.log10(((decoded - videos) ** 2).mean(dim=(1, 2, 3, 4)))
    assert (psnr > 16).all(), psnr  # a trained VAE: 19.8 dB measured over 60 renders


@pytest.mark.slow  # a benchmark run: seconds of rendering and analysis
def test_trajectory_validation_scores_own_mirrored_and_other_sentences():
    cameras = ("Camera pans right.", "Camera trucks left.", "Camera orbits right.")
    scores = trajectory_validation.score_clips(
        ("held_out",), cameras, speeds=(1.0,), fovs=(60.0,), forms=("shape", "flow")
    )
    summary = trajectory_validation.summarise(scores)
    assert (
        trajectory_validation.mirrored("Camera trucks right, then pans left.") == "Camera truck left, then pan right."
    )
    assert summary["shape"]["clips"] == 3 and len(scores["shape"]["others"]) == 3 * 2
    shape = summary["shape"]
    assert shape["right_median"] > 0.5 and shape["mirrored_median"] < 0.2 and shape["direction_right"] == 1.0
    assert shape["goals_met"] and "direction_right" not in summary["flow"]
    assert "| `shape` |" in trajectory_validation.markdown(summary)


def test_reward_chance_tells_a_key_that_reads_the_video_from_one_that_reads_chance():
    from benchmarks.validation import chance as reward_chance

    videos = torch.rand(3, 5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    changed = reward_chance.retest_videos(videos)
    assert set(changed) == set(reward_chance.RETESTS)
    assert torch.allclose(changed["8-bit"] * 255, (changed["8-bit"] * 255).round(), atol=1e-4)
    assert 0 < (changed["noise 1/255"] - videos).abs().max() <= 1 / 255 + 1e-6

    generator = torch.Generator().manual_seed(1)
    motion = torch.linspace(1, 20, 32)
    scores = {"total": 1 - motion / 40, "chance": torch.rand(32, generator=generator), reward_chance.MOTION: motion}
    again = {"total": scores["total"] + 1e-3 * torch.randn(32, generator=generator), reward_chance.MOTION: motion}
    again["chance"] = torch.rand(32, generator=generator)
    table = reward_chance.summarise(scores, {name: again for name in reward_chance.RETESTS})
    assert table["total"]["retest r (8-bit)"] > 0.99 and table["total"]["r with motion"] < -0.99
    assert abs(table["chance"]["retest r (8-bit)"]) < 0.5
    settings = {"config": "configs/mini.yaml", "prompt": "Camera truck left. A wall.", "rollouts": 32, "group_size": 8}
    report = reward_chance.markdown({"settings": settings, "keys": table})
    assert report.index("| total |") < report.index("| chance |") and "Camera truck left. A wall." in report


@pytest.mark.parametrize("variant", ["wan2.1-t2v", "wan2.1-i2v"])
def test_fresh_transformer_keeps_the_vae_and_text_encoder_and_builds_the_transformer_anew(
    tiny_variant_dir, tmp_path, variant
):
    """A base-model experiment's start: only the transformer changes, so a difference it measures is the
    transformer's; the pipeline it writes loads through the same code as any Wan (an image-to-video one keeps its
    image conditioning)."""
    from benchmarks.experiments import fresh_transformer
    from world_r1.policy.loading import load_wan_pipeline

    model = tiny_variant_dir(variant)
    out = fresh_transformer.main(
        ["--model", model, "--layers", "3", "--heads", "3", "--ffn-dim", "40", "--out", str(tmp_path / "wide")]
    )
    source, wide = load_wan_pipeline(model, torch.float32), load_wan_pipeline(out, torch.float32)
    assert type(wide) is type(source)
    assert wide.transformer.config.image_dim == source.transformer.config.image_dim
    assert (wide.transformer.config.num_layers, wide.transformer.config.num_attention_heads) == (3, 3)
    assert wide.transformer.config.ffn_dim == 40
    assert wide.transformer.config.text_dim == source.transformer.config.text_dim  # reads the same text encoder
    for kept in ("vae", "text_encoder"):
        theirs = getattr(source, kept).state_dict()
        for name, weight in getattr(wide, kept).state_dict().items():
            assert torch.equal(weight, theirs[name]), f"{kept}.{name}"
    assert wide.tokenizer("Camera pan left.").input_ids == source.tokenizer("Camera pan left.").input_ids


@pytest.mark.slow  # a benchmark run: seconds of rendering and analysis
def test_path_validation_reads_footage_and_reports_every_figure(tmp_path, monkeypatch):
    """The footage benchmark end to end on two small clips: each estimator's row, the shape form's scores, the
    headline figures and the Markdown table, with the render cache written atomically."""
    from dataclasses import replace

    from benchmarks.validation import path as path_validation

    monkeypatch.setattr(path_validation, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(path_validation, "GEOMETRY", replace(path_validation.GEOMETRY, max_side=160, anchors=4))
    specs = [
        replace(spec, num_frames=9, size=(90, 160))
        for spec in path_validation.footage_specs("held_out", ("Camera pan left.", "Camera move right."))
    ]
    monkeypatch.setattr(path_validation, "footage_specs", lambda split, cameras: specs)
    results = path_validation.run(("held_out",), ("chained", "anchored"), console=None)
    assert set(results["held_out"]) == {"chained", "anchored", "shape form (chained)", "shape form (anchored)"}
    chained = results["held_out"]["chained"]
    assert [row["camera"] for row in chained["clips"]] == ["Camera pan left.", "Camera move right."]
    pan = chained["clips"][0]
    assert pan["true_turning_deg"] == pytest.approx(14.0, abs=0.5) and 0 <= pan["score"] <= 1
    summary = chained["summary"]
    assert summary["clips"] == 2 and 0 <= summary["true_beats_mirrored"] <= 1
    assert (
        "travel_turning_median_deg" in summary
        and "travel_turning_median_deg" not in results["held_out"]["shape form (chained)"]["summary"]
    )
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2 and not list((tmp_path / "cache").glob("*.tmp"))
    table = path_validation.markdown({"splits": results})
    assert "| held_out | chained |" in table and "| held_out | shape form (anchored) | - |" in table
    assert path_validation.mirrored("Camera push in, then pan left.") == "Camera pull out, then pan right."


def test_a_variant_names_its_result_and_other_arguments_write_outside_the_results(tmp_path):
    """``--variant NAME`` re-makes the committed ``results/<kind>/<name>/<NAME>.json``; extra arguments would measure
    something else, so they go under runs/ unless --out says where; the command line is recorded as typed."""
    import argparse

    from benchmarks.provenance import RESULTS, ROOT, Variant, parse, record, write_result

    variants = {"default": Variant(), "big": Variant(("--size", "256"))}

    def parsed(argv):
        parser = argparse.ArgumentParser(prog="python -m benchmarks.validation.demo")
        parser.add_argument("--size", type=int, default=128)
        parser.add_argument("--out", type=Path, default=None)
        return parse(parser, argv, variants, "validation", "demo")

    big = parsed(["--variant", "big"])
    assert big.args.size == 256 and big.named and big.args.out == RESULTS / "validation" / "demo" / "big.json"
    assert big.command == "python -m benchmarks.validation.demo --variant big"
    assert parsed([]).args.out == RESULTS / "validation" / "demo" / "default.json"
    custom = parsed(["--variant", "big", "--size", "64"])  # later arguments win over the variant's
    assert custom.args.size == 64 and not custom.named and custom.args.out.is_relative_to(ROOT / "runs")
    elsewhere = parsed(["--variant", "big", "--out", str(tmp_path / "r.json")])
    assert elsewhere.named and elsewhere.args.out == tmp_path / "r.json"

    block = big.provenance(variants)
    assert block["command"] == big.command and block["variant_args"] == ["--size", "256"]
    assert (
        block["settings"]["size"] == 256 and block["settings"]["out"] == "benchmarks/results/validation/demo/big.json"
    )
    assert len(block["commit"]) == 40 and isinstance(block["dirty"], bool)
    assert block["machine"]["cpu_cores"] >= 1 and block["machine"]["torch"] and block["date_utc"]
    with pytest.raises(ValueError, match="headline"):
        write_result(tmp_path / "x.json", {"provenance": record("python -m x")})
    path = write_result(tmp_path / "x.json", {"headline": "h", "provenance": block}, "# table\n")
    assert (
        path.with_suffix(".md")
        .read_text()
        .endswith(
            f"Command: `{big.command}`; commit {block['commit'][:12]}"
            + (" (dirty tree)" if block["dirty"] else "")
            + f"; {block['date_utc']}.\n"
        )
    )


def _result_modules() -> dict[tuple[str, str], object]:
    import benchmarks.__main__ as speed
    from benchmarks.experiments import miniature, reinjection, warp
    from benchmarks.validation import chance, path
    from benchmarks.validation import rewards as reward_validation

    return {
        ("speed", "cpu"): speed,
        ("speed", "gpu"): speed,
        ("speed", "realsize"): realsize,
        ("validation", "rewards"): reward_validation,
        ("validation", "trajectory"): trajectory_validation,
        ("validation", "path"): path,
        ("validation", "chance"): chance,
        ("experiments", "miniature"): miniature,
        ("experiments", "warp"): warp,
        ("experiments", "reinjection"): reinjection,
    }


def test_the_committed_index_lists_every_current_result_with_the_command_that_makes_it():
    """results/INDEX.md is what ``python -m benchmarks.index`` writes now; every current result names its variant's
    command, its commit, date and headline, and records no machine's absolute paths."""
    import json

    from benchmarks import index

    assert index.INDEX.read_text(encoding="utf-8") == index.render(), "run: python -m benchmarks.index"
    results = index.current_results()
    assert len(results) >= 20
    modules = _result_modules()
    for path in results:
        kind, name, variant = path.relative_to(index.RESULTS).with_suffix("").parts
        module = modules[(kind, name)]
        assert variant in module.VARIANTS, path
        entry = index.row(path)
        prog = "benchmarks" if name in ("cpu", "gpu") else f"benchmarks.{kind}.{name}"  # the speed runner's
        expected = f"python -m {prog}" + ("" if variant == "default" else f" --variant {variant}")
        assert entry["command"] == expected and entry["headline"] and entry["date"], path
        assert len(entry["commit"].split()[0]) == 12, path
        text = path.read_text(encoding="utf-8")
        assert "/work/" not in text and '"/tmp/' not in text and "/home/" not in text, path
        if json.loads(text)["provenance"].get("reconstructed"):  # never passed off as recorded at measurement time
            assert "reconstructed" in entry["commit"]


def test_every_archived_result_says_why():
    from benchmarks.provenance import RESULTS

    archive = RESULTS / "archive"
    notes = (archive / "ARCHIVE.md").read_text(encoding="utf-8")
    stems = {path.stem for path in archive.iterdir() if path.name != "ARCHIVE.md"}
    assert stems and all(f"`{stem}." in notes for stem in stems), stems


def test_the_realsize_result_reports_the_smoke_figures_with_its_settings():
    figures = {
        "transformer parameters (B)": 1.419,
        "LoRA parameters (M)": 23.6,
        "LoRA file (MB)": 94.4,
        "checkpoint (MB)": 378.0,
        "later step seconds": 61.0,
        "peak memory (GB)": 5.1,
        "velocity: policy vs plain diffusers + LoRA (relative)": 0.0,
    }
    line = realsize.headline(figures)
    assert "1.419 B parameters" in line and "step 61 s" in line and "peak 5.1 GB" in line
    settings = {"size": "1.3b", "width": 64, "height": 64, "num_frames": 9}
    table = realsize.markdown({"figures": figures, "provenance": {"settings": settings}})
    assert "64x64x9" in table and "| LoRA file (MB) | 94.4 |" in table
    assert realsize.VARIANTS["gpu"].args == ("--height", "480", "--width", "832", "--num-frames", "81")
