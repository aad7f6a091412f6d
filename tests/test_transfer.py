"""Transfer learning: starting from a parent's weights, fastai's fine-tuning phases and rules,
one-cycle schedules, the learning-rate finder, and torchvision's ResNets and their weights."""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, job_counts, run_snakemake, scheduled_jobs, snakemake_command
from jetimage import resnets
from jetimage.config import ConfigError, training_sizes, validate
from jetimage.files import InputError
from jetimage.inference import load_model, onnx_session
from jetimage.models import build_model
from jetimage.train import TrainConfig, _start, train_model
from jetimage.transfer import (
    OneCycle,
    discriminative_rates,
    head,
    layer_groups,
    load_weights,
    valley,
)

torch.set_num_threads(2)

CNN = {"architecture": "hsf-cnn", "options": {"filters": [4, 8], "dense": 16}}
PARENT = TrainConfig(**CNN, epochs=2, batch_size=64, seed=3)


def state(path):
    return torch.load(path, weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def parent(small_dataset, tmp_path_factory):
    """A CNN trained on the small dataset: the parent of the fine-tuned models."""
    out = tmp_path_factory.mktemp("parent")
    train_model(small_dataset, out, PARENT, name="parent")
    return out / "model.pt"


def child(**settings) -> TrainConfig:
    return TrainConfig.from_dict({**CNN, "batch_size": 64, "seed": 5, "patience": 10, **settings})


def test_a_head_for_other_classes_is_not_loaded_and_said_so():
    torch.manual_seed(0)
    two = build_model("hsf-cnn", in_shape=(1, 20, 20), n_classes=2, **CNN["options"])
    three = build_model("hsf-cnn", in_shape=(1, 20, 20), n_classes=3, **CNN["options"])
    report = load_weights(three, two.state_dict())
    last = list(three.state_dict())[-2:]
    assert report["skipped"] == {
        last[0]: "shape (2, 16) in the parent, (3, 16) here",
        last[1]: "shape (2,) in the parent, (3,) here",
    }
    for name in report["loaded"]:
        assert torch.equal(three.state_dict()[name], two.state_dict()[name])
    assert set(report["loaded"]) | set(last) == set(three.state_dict())


def test_excluded_tensors_keep_their_own_values():
    torch.manual_seed(0)
    a, b = (build_model("hsf-cnn", in_shape=(1, 20, 20), n_classes=2) for _ in range(2))
    before = {k: v.clone() for k, v in b.state_dict().items()}
    report = load_weights(b, a.state_dict(), exclude=[r"^1\."])
    assert report["skipped"] == {
        "1.weight": "excluded by '^1\\\\.'",
        "1.bias": "excluded by '^1\\\\.'",
    }
    assert torch.equal(b.state_dict()["1.weight"], before["1.weight"])
    assert torch.equal(b.state_dict()["5.weight"], a.state_dict()["5.weight"])


@pytest.fixture
def imagenet_file(tmp_path, monkeypatch):
    """An RGB resnet18 weight file where torchvision keeps ImageNet's, in a temporary
    TORCH_HOME (written here: nothing is downloaded in tests)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(1)
    rgb = resnets.ResNet(resnets.DEPTHS["resnet18"], num_classes=1000).state_dict()
    path = resnets.weights_path("resnet18")
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(rgb, path)
    return rgb


@pytest.mark.parametrize("channels", [1, 2, 3, 5])
def test_first_convolution_follows_fastais_rule(imagenet_file, channels):
    model = build_model("resnet18", in_shape=(channels, 16, 16), n_classes=2)
    report = load_weights(model, resnets.imagenet_weights("resnet18"))
    rgb, got = imagenet_file["conv1.weight"], model.state_dict()["conv1.weight"]
    if channels == 1:
        expected = rgb.sum(dim=1, keepdim=True)
    elif channels == 2:
        expected = rgb[:, :2] * 1.5
    elif channels == 3:
        expected = rgb
    else:
        expected = torch.cat([rgb, torch.zeros(64, 2, 7, 7)], dim=1)
    assert torch.equal(got, expected)
    assert report["adapted"] == ([] if channels == 3 else ["conv1.weight"])
    assert set(report["skipped"]) == {"fc.weight", "fc.bias"}  # 1000 ImageNet classes
    assert len(report["loaded"]) + len(report["adapted"]) == len(model.state_dict()) - 2


def test_missing_imagenet_weights_name_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as err:
        resnets.imagenet_weights("resnet34")
    message = str(err.value)
    assert str(tmp_path / "empty" / "hub" / "checkpoints" / "resnet34-b627a593.pth") in message
    assert "https://download.pytorch.org/models/resnet34-b627a593.pth" in message


def test_resnets_are_torchvisions_where_it_imports():
    """Skipped where torchvision does not import (beside the CPU torch of PyPI: its wheel is
    built against CUDA); runs in the conda environments of the rules."""
    for name, depth in resnets.DEPTHS.items():
        network = resnets._torchvision(name, 1000)
        if network is None:
            pytest.skip("torchvision does not import here")
        theirs = network.state_dict()
        ours = resnets.ResNet(depth).state_dict()
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_small_images_keep_their_resolution_to_the_last_stage():
    seen = {}
    for small in (True, False):
        model = build_model("resnet18", in_shape=(1, 40, 40), n_classes=2, small_images=small)
        model.layer4.register_forward_hook(lambda m, i, o, s=small: seen.update({s: o.shape}))
        model(torch.zeros(1, 1, 40, 40))
    assert seen[True][-2:] == (5, 5)
    assert seen[False][-2:] == (2, 2)


def test_rates_spread_geometrically_over_the_layer_groups():
    rates = discriminative_rates(1e-3, 100, 5)
    assert rates[0] == pytest.approx(1e-5)
    assert rates[-1] == pytest.approx(1e-3)
    assert np.allclose(np.diff(np.log(rates)), math.log(100) / 4)
    assert discriminative_rates(1e-3, 100, 1) == [1e-3]


def test_one_cycle_equals_torchs_one_cycle_schedule():
    """fastai's policy against torch's OneCycleLR (cosine, the same start and end factors);
    they differ only by where a step lands within the cycle (torch counts steps from 0 to
    total - 1)."""
    steps, lr = 2000, 0.01
    ours = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr)
    theirs = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr)
    cycle = OneCycle(ours, [lr], epochs=1, pct_start=0.3)
    reference = torch.optim.lr_scheduler.OneCycleLR(
        theirs, max_lr=lr, total_steps=steps, pct_start=0.3, final_div_factor=1e5 / 25
    )
    for i in range(steps):
        cycle.at(i / (steps - 1))
        assert ours.param_groups[0]["lr"] == pytest.approx(
            theirs.param_groups[0]["lr"], rel=2e-3, abs=1e-7
        )
        assert ours.param_groups[0]["betas"][0] == pytest.approx(
            theirs.param_groups[0]["betas"][0], abs=2e-4
        )
        theirs.step()
        reference.step()


def test_fine_tuning_groups_get_the_rules_rates(parent):
    config = child(
        init={"from": str(parent)}, fine_tune={"lr_mult": 100}, learning_rate=0.01, epochs=1
    )
    saved = torch.load(parent, weights_only=False)
    run = _start(config, torch.device("cpu"), (1, 20, 20), 2, {}, saved["state_dict"])
    groups = layer_groups(run.model)
    assert len(run.optimizer.param_groups) == len(groups) == 4  # two convolutions, two dense
    from jetimage.train import _enter_phase

    _enter_phase(run, config, 0)  # phase 1: one cycle at the learning rate, the head only
    assert run.scheduler.max_lrs == [0.01] * 4
    trained = {n for n, p in run.model.named_parameters() if p.requires_grad}
    assert trained == set(groups[-1])  # every tensor loaded: the last layer trains alone
    _enter_phase(run, config, 1)
    assert run.scheduler.max_lrs == pytest.approx(discriminative_rates(0.005, 100, 4))
    run.scheduler.at(1 + 0.3)  # the top of the second cycle
    assert [g["lr"] for g in run.optimizer.param_groups] == pytest.approx(
        [0.005 / 100, 0.005 / 100 ** (2 / 3), 0.005 / 100 ** (1 / 3), 0.005]
    )
    assert all(p.requires_grad for p in run.model.parameters())


def test_head_is_what_was_not_loaded_the_last_layers_and_the_batch_norms():
    model = build_model("resnet18", in_shape=(1, 8, 8), n_classes=2)
    loaded = [n for n, _ in model.named_parameters() if not n.startswith("fc.")]
    trained = head(model, loaded)
    assert {"fc.weight", "fc.bias", "bn1.weight", "layer4.1.bn2.bias"} <= trained
    assert not {"conv1.weight", "layer4.1.conv2.weight"} & trained


def test_phase_one_keeps_the_body_bit_identical_and_phase_two_trains_it(
    small_dataset, parent, tmp_path
):
    config = child(init={"from": str(parent)}, fine_tune={"freeze_epochs": 1}, epochs=1)
    train_model(small_dataset, tmp_path, config, name="child", max_epochs_this_run=1)
    after_one = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    before = state(parent)
    body = list(before)[:-2]
    for name in body:
        assert torch.equal(after_one[name], before[name]), name
    assert not torch.equal(after_one[list(before)[-2]], before[list(before)[-2]])
    train_model(small_dataset, tmp_path, config, name="child")
    final = state(tmp_path / "model.pt")
    assert all(not torch.equal(final[n], before[n]) for n in body)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [e["phase"] for e in history["epochs"]] == [1, 2]
    assert history["init"]["loaded"] == list(before)
    assert history["init"]["normalization"] == "the parent's (parent)"


@pytest.mark.parametrize("killed_after", [1, 2])
def test_a_killed_fine_tuning_resumes_to_the_same_weights(
    small_dataset, parent, tmp_path, killed_after
):
    config = child(init={"from": str(parent)}, fine_tune={"freeze_epochs": 1}, epochs=2)
    train_model(small_dataset, tmp_path / "whole", config, name="c")
    train_model(
        small_dataset, tmp_path / "killed", config, name="c", max_epochs_this_run=killed_after
    )
    train_model(small_dataset, tmp_path / "killed", config, name="c")
    whole, resumed = state(tmp_path / "whole" / "model.pt"), state(tmp_path / "killed" / "model.pt")
    for name, tensor in whole.items():
        assert torch.equal(tensor, resumed[name]), name


def test_frozen_tensors_never_train_and_the_child_keeps_its_parents_standardisation(
    small_dataset, parent, tmp_path
):
    saved = torch.load(parent, weights_only=False)
    shifted = {"mean": [m + 0.5 for m in saved["info"]["normalization"]["mean"]]}
    saved["info"]["normalization"] = {**saved["info"]["normalization"], **shifted}
    torch.save(saved, tmp_path / "parent.pt")
    config = child(init={"from": str(tmp_path / "parent.pt"), "freeze": [r"^1\."]}, epochs=2)
    train_model(small_dataset, tmp_path / "child", config, name="child")
    final = torch.load(tmp_path / "child" / "model.pt", weights_only=False)
    assert torch.equal(final["state_dict"]["1.weight"], saved["state_dict"]["1.weight"])
    assert not torch.equal(final["state_dict"]["5.weight"], saved["state_dict"]["5.weight"])
    assert final["info"]["normalization"] == saved["info"]["normalization"]
    history = json.loads((tmp_path / "child" / "history.json").read_text())
    assert history["init"]["frozen"] == ["1.weight", "1.bias"]


def test_a_fine_tuned_resnet_exports_and_scores_like_torch(small_dataset, imagenet_file, tmp_path):
    config = TrainConfig.from_dict(
        {
            "architecture": "resnet18",
            "init": {"from": "imagenet"},
            "fine_tune": {"freeze_epochs": 1},
            "epochs": 1,
            "batch_size": 128,
        }
    )
    train_model(small_dataset, tmp_path, config, name="rn")
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["init"]["adapted"] == ["conv1.weight"]
    assert history["init"]["normalization"] == "this dataset's"
    model, info = load_model(tmp_path / "model.pt")
    x = torch.randn(4, 1, 20, 20)
    with torch.no_grad():
        expected = model(x).numpy()
    session = onnx_session(tmp_path / "model.onnx")
    got = session.run(None, {"images": x.numpy()})[0]
    assert np.allclose(got, expected, atol=1e-4)


def test_valley_is_two_thirds_down_the_longest_descent():
    losses = [1.0] * 10 + list(np.linspace(0.9, 0.1, 60)) + list(np.linspace(0.2, 3, 30))
    lrs = list(np.logspace(-7, 1, 100))
    # the descent: index 8 (before the first lower loss, as fastai counts) to 69
    assert valley(lrs, losses) == 8 + 20 + 10


def test_one_cycle_training_ends_at_a_tiny_rate_and_learns(small_dataset, tmp_path):
    config = TrainConfig(**CNN, epochs=3, batch_size=64, seed=3, schedule="one-cycle")
    history = train_model(small_dataset, tmp_path, config, name="cycle")
    from jetimage.loader import open_split

    n = len(open_split(small_dataset, "train", memory_budget_mb=1e6))
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    cycle = OneCycle(optimizer, [config.learning_rate], epochs=3)
    for epoch, entry in enumerate(history):  # the rate of each epoch's last batch
        (expected,), _ = cycle.rates(epoch + 64 * ((n - 1) // 64) / n)
        assert entry["learning_rate"] == pytest.approx(expected, rel=1e-12)
    assert history[-1]["val_accuracy"] > 0.7


def test_lr_find_runs_the_rates_up_and_suggests_one_it_tried(small_dataset, parent, tmp_path):
    from jetimage.lr_find import find_learning_rate

    config = child(init={"from": str(parent)}, fine_tune={})
    found = find_learning_rate(small_dataset, tmp_path / "lr.json", config, name="child")
    lrs = np.array(found["lrs"])
    assert np.allclose(np.diff(np.log(lrs)), math.log(1e8) / 99)
    assert found["suggestion"] in found["lrs"]
    assert found["minimum"] in found["lrs"]
    losses = found["losses"]
    assert losses[found["lrs"].index(found["minimum"])] == min(losses)
    assert losses[found["lrs"].index(found["suggestion"])] < losses[0]  # on the way down
    assert json.loads((tmp_path / "lr.json").read_text())["suggestion"] == found["suggestion"]
    assert (tmp_path / "lr.png").stat().st_size > 0
    assert torch.equal(state(parent)["1.weight"], torch.load(parent)["state_dict"]["1.weight"])


TINY = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())


def _model(name, **entry):
    return lambda c: c["models"][name].update(entry)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _model("logistic", init={"from": "hsf-cn"}),
            (
                r"models/logistic/init: from: 'hsf-cn' is neither a model of this run .* nor "
                r"imagenet, nor a model.pt file; did you mean 'hsf-cnn'"
            ),
        ),
        (_model("hsf-cnn", init={"from": "hsf-cnn"}), r"hsf-cnn -> hsf-cnn is a cycle"),
        (
            _model("hsf-cnn", init={"from": "hsf-cnn-tuned"}),
            r"models/hsf-cnn/init: from: hsf-cnn -> hsf-cnn-tuned -> hsf-cnn is a cycle",
        ),
        (
            lambda c: c["training"].update(init={"from": "hsf-cnn"}),
            r"config key training/init: from: hsf-cnn -> hsf-cnn is a cycle",
        ),
        (
            _model("hsf-cnn", init={"from": "imagenet"}),
            r"no ImageNet weights for hsf-cnn; there are for \['resnet18', 'resnet34'\]",
        ),
        (
            _model("pfn", init={"from": "hsf-cnn"}),
            r"models/pfn/init: from: hsf-cnn takes the jets' images, pfn their particles",
        ),
        (_model("logistic", fine_tune={}), r"models/logistic/fine_tune: fine-tuning needs init"),
        (
            _model("logistic", init={"from": "hsf-cnn", "freeze": ["(conv"]}),
            r"freeze: '\(conv' is not a regular expression",
        ),
        (
            _model("logistic", init={"from": "hsf-cnn"}, fine_tune={"lr_mult": 0.5}),
            r"models/logistic/fine_tune/lr_mult: 0.5 is less than the minimum of 1",
        ),
    ],
)
def test_bad_inits_are_config_errors_naming_the_key(change, message):
    config = copy.deepcopy(TINY)
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_a_parent_trained_on_other_images_is_a_config_error_but_other_channels_are_not(parent):
    config = copy.deepcopy(TINY)
    config["models"]["logistic"]["init"] = {"from": str(parent)}
    config["images"]["channels"] = ["pt", "counts"]  # adapted by the loading
    validate(copy.deepcopy(config))
    config["images"]["npix"] = [24, 24]
    with pytest.raises(ConfigError) as err:
        validate(config)
    assert str(err.value) == (
        f"config key models/logistic/init: from: {parent} was trained on other images: "
        "images/npix [20, 20] there, [24, 24] here"
    )


def test_a_change_of_the_parent_retrains_its_children_and_no_other_model(tiny_run, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(tiny_run, work, symlinks=True)
    path = work / "results" / "models" / "hsf-cnn" / "model.pt"
    saved = torch.load(path, weights_only=False)  # a retrained parent: other weights
    saved["state_dict"]["1.weight"] += 0.01
    torch.save(saved, path)
    out = subprocess.run(
        snakemake_command(work, work / "config.yaml", "--dry-run"),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    jobs = job_counts(out)
    assert jobs["train"] == 1
    assert "model=hsf-cnn-tuned" in out.split("rule train:")[1].split("rule ")[0]
    assert {"dataset", "images", "generate"}.isdisjoint(jobs)


def test_the_tiny_runs_tuned_model_started_from_its_parent(tiny_run):
    models = tiny_run / "results" / "models"
    history = json.loads((models / "hsf-cnn-tuned" / "history.json").read_text())
    assert history["init"]["from"] == "hsf-cnn"
    assert history["init"]["loaded"] == list(state(models / "hsf-cnn" / "model.pt"))
    assert [e["phase"] for e in history["epochs"]] == [1, 2]


def test_the_lr_find_rule_runs_on_request_for_a_tuned_model(tiny_run, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(tiny_run, work, symlinks=True)
    target = "results/models/hsf-cnn-tuned/lr_find.json"
    run_snakemake(work, work / "config.yaml", target)
    found = json.loads((work / target).read_text())
    assert found["model"] == "hsf-cnn-tuned"
    assert 1e-7 <= found["suggestion"] <= 10
    assert (work / "results" / "models" / "hsf-cnn-tuned" / "lr_find.pdf").exists()
    assert scheduled_jobs(work, work / "config.yaml") == {}  # not part of a run


def test_max_train_jets_trains_on_the_splits_first_jets_only(small_dataset, tmp_path):
    from jetimage.loader import open_split

    config = TrainConfig(**CNN, epochs=1, batch_size=64, seed=3, max_train_jets=100)
    train_model(small_dataset, tmp_path, config, name="few")
    history = json.loads((tmp_path / "history.json").read_text())
    first = open_split(small_dataset, "train", memory_budget_mb=1e6, first=100)
    expected = np.bincount(first.labels.numpy(), minlength=2)
    assert history["train_jets"] == {"qcd": int(expected[0]), "top": int(expected[1])}
    assert torch.equal(
        first.x[0], open_split(small_dataset, "train", memory_budget_mb=1e6).x[0][:100]
    )
    too_many = TrainConfig(**CNN, epochs=1, max_train_jets=10**6)
    with pytest.raises(InputError, match="max_train_jets 1000000 is more than the train split's"):
        train_model(small_dataset, tmp_path / "b", too_many, name="b")


def test_zero_epochs_apply_the_parent_as_it_is(small_dataset, parent, tmp_path):
    config = child(init={"from": str(parent)}, epochs=0)
    assert train_model(small_dataset, tmp_path, config, name="as-is") == []
    for name, tensor in state(parent).items():
        assert torch.equal(state(tmp_path / "model.pt")[name], tensor)
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["init"]["as_is"]["val_accuracy"] > 0.6
    assert (tmp_path / "model.onnx").exists()
    with pytest.raises(ValueError, match="epochs 0 .* needs init"):
        TrainConfig(**CNN, epochs=0)


def test_learning_curves_group_models_by_where_they_start(parent):
    """The transfer study's config, its parent (the default run's CNN) here the test's."""
    from jetimage.report import learning_curves

    config = yaml.safe_load((REPO / "config" / "transfer.yaml").read_text())
    for entry in config["models"].values():
        if "init" in entry:
            entry["init"] = {**entry["init"], "from": str(parent)}
    config["images"] = {"npix": [20, 20], "width": [1.6, 1.6]}  # the test parent's
    config = validate(config)
    metrics = {m: {"auc": {"value": 0.9, "std": 0.01}, "name": m} for m in config["models"]}
    curves = learning_curves(training_sizes(config), metrics, train_jets=9000)
    assert {f: [(n, m["name"]) for n, m in points] for f, points in curves.items()} == {
        "hsf-cnn from scratch": [
            (500, "scratch-500"),
            (2000, "scratch-2000"),
            (8000, "scratch-8000"),
        ],
        "hsf-cnn fine-tuned from pretrained": [
            (500, "tuned-500"),
            (2000, "tuned-2000"),
            (8000, "tuned-8000"),
        ],
        "hsf-cnn pretrained, as it is": [(0, "pretrained-as-is")],
    }
    tiny = dict.fromkeys(TINY_VALID["models"], metrics["scratch-500"])
    assert learning_curves(training_sizes(TINY_VALID), tiny, train_jets=9000) == {}


TINY_VALID = validate(copy.deepcopy(TINY))


def test_imagenet_weights_that_do_not_fit_the_network_are_an_error(
    imagenet_file, small_dataset, tmp_path
):
    """A weight file with another layout (here torchvision's names changed) would otherwise
    start the network from its own initialisation but for the tensors that happen to match."""
    renamed = {k.replace("layer4.", "stage4."): v for k, v in imagenet_file.items()}
    torch.save(renamed, resnets.weights_path("resnet18"))
    config = TrainConfig.from_dict({"architecture": "resnet18", "init": {"from": "imagenet"}})
    with pytest.raises(
        ValueError, match=r"do not fit torchvision's resnet18: not loaded \['layer4"
    ):
        train_model(small_dataset, tmp_path, config, name="rn")


def test_a_particle_model_fine_tunes_from_its_parent(observables_dataset, tmp_path):
    """init and fine_tune follow the one model interface: a PFN starts from a PFN."""
    pfn = {"architecture": "pfn", "options": {"phi": [16, 16], "f": [16], "identities": False}}
    train_model(observables_dataset, tmp_path / "p", TrainConfig(**pfn, epochs=1, seed=1), name="p")
    config = TrainConfig.from_dict(
        {**pfn, "init": {"from": str(tmp_path / "p" / "model.pt")}, "fine_tune": {}, "epochs": 1}
    )
    train_model(observables_dataset, tmp_path / "c", config, name="c")
    history = json.loads((tmp_path / "c" / "history.json").read_text())
    assert history["init"]["loaded"] == list(state(tmp_path / "p" / "model.pt"))
    assert history["init"]["normalization"] == "the parent's (p)"
    assert [e["phase"] for e in history["epochs"]] == [1, 2]
