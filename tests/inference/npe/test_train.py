"""Training runs, resumes, and saves a model card that loading checks."""

import json
from dataclasses import replace

import equinox as eqx
import jax
import numpy as np
import pytest

from sedppl.inference.npe.card import ModelMismatchError, load_npe, read_card, sign_card
from sedppl.inference.npe.estimator import NPEEstimator
from sedppl.inference.npe.posterior import Architecture
from sedppl.inference.npe.train import TrainConfig, train
from sedppl.io.catalog import read_catalog
from sedppl.model.priors import Prior
from sedppl.model.simulate import simulate_catalog

TINY = TrainConfig(
    bands=("gaia_g", "gaia_bp", "gaia_rp", "2mass_j", "2mass_h", "2mass_ks", "wise_w1"),
    architecture=Architecture(width=16, depth=1, heads=2, summary_dim=8, flow_layers=2, flow_width=16, knots=4),
    batch_size=32, steps_per_epoch=4, max_epochs=3, val_size=128, warmup_steps=2,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("npe")
    posterior, card = train(TINY, out, progress=False)
    return out, posterior, card


def test_training_writes_a_complete_card(trained):
    out, _, card = trained
    for name in ("weights.eqx", "card.json", "prior.toml", "README.md", "checkpoint.json"):
        assert (out / name).exists(), name
    assert card.training["epochs"] == 3 and len(card.training["history"]) == 3
    assert json.loads((out / "checkpoint.json").read_text())["weights"] == "checkpoint-1.eqx"  # epoch 3's slot
    assert np.isfinite(card.training["best_validation_nll"])
    assert card.bands == TINY.bands and card.library == "phoenix"
    assert card.data_hash and card.code_hash
    assert card.zero_points["gaia_g"] == pytest.approx(0.1137, abs=1e-3) and card.zero_points["2mass_j"] > 0.9
    assert Prior.load(out / "prior.toml").to_dict() == Prior.default().to_dict()
    assert read_card(out).architecture == TINY.architecture.to_dict()


def test_a_card_from_other_zero_points_warns_on_load(trained, tmp_path):
    """A model trained under other zero points (or before they were recorded) still loads, with a warning
    that names the offsets; one trained now loads silently."""
    import shutil
    import warnings

    out, _, card = trained
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_npe(out)
    for recorded, match in (({}, "not recorded"), (card.zero_points | {"gaia_bp": 0.0}, "gaia_bp")):
        other = shutil.copytree(out, tmp_path / f"m{len(recorded)}")
        sign_card(other, replace(read_card(other), zero_points=recorded))
        with pytest.warns(UserWarning, match=match):
            load_npe(other)


def test_a_modified_truncated_or_edited_model_is_refused(trained, tmp_path):
    """Checksums in the card: two flipped bytes in the weights, a truncated file, or a card whose band order
    was edited are refused by name before any star is fitted."""
    import shutil

    out, _, _ = trained
    cases = {
        "flipped": lambda m: (m / "weights.eqx").write_bytes(_flip((m / "weights.eqx").read_bytes())),
        "truncated": lambda m: (m / "weights.eqx").write_bytes((m / "weights.eqx").read_bytes()[:-100]),
        "bands": lambda m: (m / "card.json").write_text(json.dumps(
            json.loads((m / "card.json").read_text()) | {"bands": list(TINY.bands[::-1])})),
    }
    for name, damage in cases.items():
        model = shutil.copytree(out, tmp_path / name)
        damage(model)
        with pytest.raises(ModelMismatchError, match="card.json was edited" if name == "bands" else "weights.eqx"):
            load_npe(model)


def test_a_damaged_card_is_refused_by_name(trained, tmp_path):
    """Once a bare JSON message, a traceback (a list; a missing field) or a one-word KeyError ('bands'),
    and for a card without checksums whose architecture does not fit its weights, equinox's shape error."""
    import shutil

    out, _, _ = trained
    card = json.loads((out / "card.json").read_text())
    cases = {
        "notjson": ('{"library": "phoenix", oops', r"card.json is not valid JSON"),
        "list": ("[1, 2, 3]", r"card.json must hold a JSON object \(a model card\), got list"),
        "nobands": (json.dumps({k: v for k, v in card.items() if k != "bands"}), r"missing field\(s\) \['bands'\]"),
        "noarch": (json.dumps({k: v for k, v in card.items() if k != "architecture"}),
                   r"missing field\(s\) \['architecture'\]"),
        "extra": (json.dumps(card | {"colour": "blue"}), r"unknown \['colour'\]"),
        "unsigned": (json.dumps({k: v for k, v in card.items() if k != "checksums"}
                                | {"architecture": card["architecture"] | {"width": 32}}),
                     r"weights.eqx does not fit the architecture in card.json"),
    }
    for name, (text, message) in cases.items():
        model = shutil.copytree(out, tmp_path / name)
        (model / "card.json").write_text(text)
        with pytest.warns(UserWarning, match="no checksums") if name == "unsigned" else _nothing():
            with pytest.raises(ModelMismatchError, match=message):
                load_npe(model)


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 1, data[middle + 1] ^ 1]) + data[middle + 2:]


def test_resume_continues_exactly_and_refuses_another_config(trained, tmp_path):
    """Stopped after one epoch by its time budget, then resumed: the same run as without the stop.
    A kill while epoch 2 was being written (half a weights file in its slot, a staged json) changes nothing."""
    _, _, card = trained
    first = train(replace(TINY, max_minutes=0.0), tmp_path, progress=False)[1]
    assert first.training["epochs"] == 1 and first.training["stopped"] == "time"
    (tmp_path / "checkpoint-0.eqx").write_bytes((tmp_path / "checkpoint-1.eqx").read_bytes()[:100])
    (tmp_path / "checkpoint.json.tmp").write_text('{"state": {"epoch": 2')
    saved = json.loads((tmp_path / "checkpoint.json").read_text())  # as written before Architecture.flow existed
    del saved["config"]["architecture"]["flow"]
    (tmp_path / "checkpoint.json").write_text(json.dumps(saved))
    _, resumed = train(TINY, tmp_path, resume=True, progress=False)
    assert resumed.training["epochs"] == 3
    np.testing.assert_allclose(np.asarray(resumed.training["history"])[:, 1:],
                               np.asarray(card.training["history"])[:, 1:], rtol=1e-5)
    with pytest.raises(ValueError, match="another configuration"):
        train(replace(TINY, seed=5), tmp_path, resume=True, progress=False)


def test_a_checkpoint_from_before_the_error_scatter_resumes_only_without_scatter():
    """A survey-noise checkpoint written before ``error_scatter`` and ``dropout`` existed was trained without
    them: it resumes with both at 0 and is refused under either's default (another run)."""
    from sedppl.inference.npe.train import _run_definition_as_written
    from sedppl.model.surveys import SurveyNoise

    before = replace(TINY, noise=SurveyNoise(error_scatter=0.0, dropout=0.0)).run_definition()
    del before["noise"]["error_scatter"], before["noise"]["dropout"]
    for scatter, dropout, same in ((0.0, 0.0, True), (0.25, 0.0, False), (0.0, 0.03, False)):
        config = replace(TINY, noise=SurveyNoise(error_scatter=scatter, dropout=dropout))
        assert (_run_definition_as_written(before, config) == config.run_definition()) == same


def test_a_checkpoint_naming_the_default_prior_resumes_under_the_prior_it_meant(tmp_path):
    """Before 2026-12-02 a checkpoint named its prior ("default", whose floor was then 0.02 mag) instead of
    storing it: it resumes under a file holding that prior and is refused under today's default (another run).
    A checkpoint naming a file is read by its content, so a moved or rewritten file of the same prior resumes."""
    from sedppl.inference.npe.train import _run_definition_as_written

    fixed = tmp_path / "fixed.toml"
    fixed.write_text(Prior.default(sys_floor=0.02).to_toml())
    before = TINY.to_dict()
    assert before["prior"] == "default" and Prior.default().sys_floor == "libraries"
    for config, same in ((replace(TINY, prior=str(fixed)), True), (TINY, False)):
        assert (_run_definition_as_written(before, config) == config.run_definition()) == same
    named = replace(TINY, prior=str(fixed)).to_dict()
    moved = tmp_path / "moved.toml"
    moved.write_text(fixed.read_text())
    assert _run_definition_as_written(named, replace(TINY, prior=str(moved))) == replace(
        TINY, prior=str(moved)).run_definition()
    assert TINY.run_definition()["prior"] == Prior.default().to_toml()  # what a checkpoint stores now


@pytest.mark.slow  # ~85 s on 2 cores (three trainings); fine-tuning is for model builders: `make test-all`
def test_fine_tuning_starts_from_the_parent_and_never_ends_worse(trained, tmp_path):
    """init_from: epoch 0 is the parent's weights (its own validation NLL, same seed), the result is
    no worse, the card names its parent; another prior is allowed, another architecture refused."""
    out, _, parent = trained
    _, card = train(replace(TINY, init_from=str(out), max_epochs=2), tmp_path / "tuned", progress=False)
    start = card.training["starting_validation_nll"]
    np.testing.assert_allclose(start, parent.training["best_validation_nll"], rtol=1e-5)
    assert card.training["best_validation_nll"] <= start
    assert card.training["history"][0][0] == 0 and card.training["epochs"] == 2
    lineage = card.training["init_from"]
    assert lineage["epochs"] == 3 and lineage["best_validation_nll"] == parent.training["best_validation_nll"]

    narrower = tmp_path / "prior.toml"
    narrower.write_text(Prior.default().to_toml().replace("high = 15.0", "high = 5.0"))
    _, swapped = train(replace(TINY, init_from=str(out), max_epochs=1, prior=str(narrower)), tmp_path / "swapped",
                       progress=False)
    assert swapped.prior().to_dict()["av"]["high"] == 5.0
    recorded = swapped.training["config"]  # paths relative to the model directory, not this machine's
    assert recorded["prior"] == "../prior.toml"
    assert (tmp_path / "swapped" / recorded["init_from"]).resolve() == out.resolve()
    wider = replace(TINY, init_from=str(out), architecture=replace(TINY.architecture, flow_width=32))
    with pytest.raises(ValueError, match="architecture differ"):
        train(wider, tmp_path / "refused", progress=False)


@pytest.mark.slow  # ~55 s on 2 cores (a training); fine-tuning is for model builders: `make test-all`
def test_fine_tuning_may_add_a_conditional_affine_layer_that_starts_as_the_identity(trained, tmp_path):
    out, parent, _ = trained
    grown = replace(TINY, init_from=str(out), architecture=replace(TINY.architecture, conditional_affine=True))
    _, card = train(replace(grown, max_epochs=1), tmp_path / "grown", progress=False)
    assert card.architecture["conditional_affine"]
    np.testing.assert_allclose(card.training["starting_validation_nll"],
                               read_card(out).training["best_validation_nll"], rtol=1e-5)
    tuned, _ = load_npe(tmp_path / "grown")
    assert len(tuned.flow.bijection.bijections) == len(parent.flow.bijection.bijections) + 1
    with pytest.raises(ValueError, match="architecture differ"):  # a layer may be added, never dropped
        train(replace(TINY, init_from=str(tmp_path / "grown"), max_epochs=1), tmp_path / "shrunk", progress=False)


def test_fine_tuning_may_move_to_another_support_map(trained, model):
    """The encoder and flow layers start as the parent's, exactly; the base is the new map's own."""
    from sedppl.inference.npe.posterior import NPEPosterior
    from sedppl.inference.npe.train import warm_start

    out, parent, _ = trained
    moved = replace(TINY, init_from=str(out), architecture=replace(TINY.architecture, support_map="logit"))
    fresh = NPEPosterior(jax.random.key(99), len(TINY.bands), model.support(), 0.02, moved.architecture)
    started, lineage = warm_start(fresh, moved)
    layers = lambda p: (p.encoder, p.flow.bijection.bijections[0])  # noqa: E731
    leaves = lambda t: jax.tree.leaves(eqx.filter(t, eqx.is_inexact_array))  # noqa: E731
    assert all(np.array_equal(a, b) for a, b in zip(leaves(layers(started)), leaves(layers(parent))))
    assert not np.array_equal(leaves(fresh.encoder)[0], leaves(parent.encoder)[0])
    assert len(leaves(started.flow.base_dist)) == 2 and not leaves(parent.flow.base_dist)  # trainable loc, scale
    assert lineage["epochs"] == 3


def test_fine_tuning_into_another_kind_of_flow_keeps_only_the_encoder(trained, model):
    """A coupling flow cannot inherit a MAF's layers: its encoder starts as the parent's, its flow afresh."""
    from sedppl.inference.npe.posterior import NPEPosterior
    from sedppl.inference.npe.train import warm_start

    out, parent, _ = trained
    coupling = replace(TINY.architecture, flow="coupling", flow_layers=3)
    config = replace(TINY, init_from=str(out), architecture=coupling)
    fresh = NPEPosterior(jax.random.key(99), len(TINY.bands), model.support(), 0.02, coupling)
    started, lineage = warm_start(fresh, config)
    leaves = lambda t: jax.tree.leaves(eqx.filter(t, eqx.is_inexact_array))  # noqa: E731
    assert all(np.array_equal(a, b) for a, b in zip(leaves(started.encoder), leaves(parent.encoder)))
    assert all(np.array_equal(a, b) for a, b in zip(leaves(started.flow), leaves(fresh.flow)))
    assert lineage["kept"] == "encoder"
    with pytest.raises(ValueError, match="architecture differ"):  # the encoder itself must match
        warm_start(fresh, replace(config, architecture=replace(coupling, width=32)))


def test_loading_checks_bands_library_and_prior(trained):
    out, posterior, _ = trained
    loaded, _ = load_npe(out, bands=("gaia_g", "2mass_j"), library="phoenix", prior=Prior.default())
    leaves = lambda t: jax.tree.leaves(eqx.filter(t, eqx.is_inexact_array))  # noqa: E731
    assert len(leaves(loaded)) == len(leaves(posterior)) > 10
    assert all(np.array_equal(a, b) for a, b in zip(leaves(loaded), leaves(posterior)))
    with pytest.raises(ModelMismatchError, match="sdss_u"):
        load_npe(out, bands=("gaia_g", "sdss_u"))
    with pytest.raises(ModelMismatchError, match="kurucz"):
        load_npe(out, library="kurucz")
    other = Prior.from_dict(Prior.default().to_dict() | {"rv": {"dist": "uniform", "low": 2.0, "high": 5.0}})
    with pytest.raises(ModelMismatchError, match=r"another prior.*rv"):
        load_npe(out, prior=other)


def test_estimator_draws_are_valid_and_counted(trained):
    out, posterior, card = trained
    model = card.model()
    catalog = read_catalog(simulate_catalog(jax.random.key(1), 5, model))
    draws = NPEEstimator(posterior, model, draws=100, stars_per_call=2).sample(
        jax.random.key(2), catalog.err, catalog.mask, catalog.mag, progress=False)
    assert draws.params["teff"].shape == (5, 1, 100) and draws.n_rejected.shape == (5,)
    x = np.stack([draws.params[p][:, 0] for p in ("teff", "logg", "mh", "av", "rv")], -1).reshape(-1, 5)
    assert np.all(jax.vmap(model.forward.in_grid)(x))
    assert np.all(np.isfinite(draws.params["theta_mas"])) and np.all(draws.params["theta_mas"] > 0)


def test_config_file_errors_name_the_table_and_key(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[train]\nbatchsize = 32\n")
    with pytest.raises(ValueError, match=r"\[train\] has unknown key\(s\) \['batchsize'\]"):
        TrainConfig.from_toml(bad)
    bad.write_text("[optimizer]\nlr = 1\n")
    with pytest.raises(ValueError, match="unknown table"):
        TrainConfig.from_toml(bad)
    good = tmp_path / "g.toml"
    good.write_text("[train]\nbatch_size = 32\n[noise]\nerr_max = 0.2\n[architecture]\nwidth = 16\n")
    config = TrainConfig.from_toml(good)
    assert config.batch_size == 32 and config.noise.err_max == 0.2 and config.architecture.width == 16
    # once a traceback from equinox or JAX, an argmax of an empty sequence, or (a negative learning rate, zero
    # epochs) a model written as if trained, with a validation loss of inf
    for table, setting, words in (
        ("architecture", 'width = "big"', r"architecture: width must be a whole number >= 1, got 'big'"),
        ("architecture", "heads = 0", r"architecture: heads must be a whole number >= 1, got 0"),
        ("architecture", "interval = -5.0", r"architecture: interval must be a finite number > 0"),
        ("train", "batch_size = 0", r"\[train\] batch_size must be a whole number >= 1, got 0"),
        ("train", "max_epochs = 0", r"\[train\] max_epochs must be a whole number >= 1, got 0"),
        ("train", 'seed = "two"', r"\[train\] seed must be a whole number >= 0, got 'two'"),
        ("train", "learning_rate = -1.0", r"\[train\] learning_rate must be a finite number > 0, got -1.0"),
        ("train", "max_minutes = -1.0", r"\[train\] max_minutes must be a number >= 0, got -1.0"),
    ):
        bad.write_text(f"[{table}]\n{setting}\n")
        with pytest.raises(ValueError, match=words):
            TrainConfig.from_toml(bad)


def test_cli_time_budget_stops_and_resume_finishes(trained, tmp_path):
    """`sedppl train --max-minutes 0` stops after one epoch; `--resume` then runs to max_epochs."""
    from sedppl.io.cli import main

    arch = ", ".join(f"{k} = {json.dumps(v)}" for k, v in TINY.architecture.to_dict().items())  # TOML values
    config = tmp_path / "tiny.toml"
    config.write_text(f"[model]\nbands = {list(TINY.bands)!r}\n[architecture]\n" + arch.replace(", ", "\n")
                      + "\n[train]\nbatch_size = 32\nsteps_per_epoch = 4\nmax_epochs = 3\nval_size = 128\nwarmup_steps = 2\n")
    out = tmp_path / "model"
    assert main(["train", "--config", str(config), "--out", str(out), "--max-minutes", "0", "--quiet"]) == 0
    assert read_card(out).training["epochs"] == 1 and read_card(out).training["stopped"] == "time"
    assert main(["train", "--config", str(config), "--out", str(out), "--resume", "--quiet"]) == 0
    assert read_card(out).training["epochs"] == 3 and read_card(out).training["stopped"] == "max_epochs"
