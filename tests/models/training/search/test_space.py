"""Search spaces over the seed's binary program: every refusal with where it
points and what it says, the draws, the grid, the trials' specs and their
grouping into side-by-side programs."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from models.errors import ValidationFailed
from models.training.search.space import (
    MAX_TRIALS,
    Search,
    Trial,
    ranking,
    shape_groups,
    trial_specs,
)
from models.training.spec import Optimizer
from models.validation import validate


def binary_spec(**fit: Any) -> dict[str, Any]:
    """The seed's binary program, as /work/shared/API.md's example gives it."""
    relu = {"type": "dense", "units": 60, "activation": "relu"}
    return {
        "input_shape": [17],
        "layers": [dict(relu), dict(relu), dict(relu), {"type": "dense", "units": 1,
                                                       "activation": "sigmoid"}],
        "compile": {"loss": "binary_crossentropy", "optimizer": "adam", "metrics": ["accuracy"]},
        "fit": {"epochs": 30, "batch_size": 10, **fit},
        "seed": 3,
    }  # fmt: skip


def with_dropout(spec: dict[str, Any]) -> dict[str, Any]:
    """The binary program with a Dropout(0.2) as layers.1."""
    spec["layers"].insert(1, {"type": "dropout", "rate": 0.2})
    return spec


def search(space: dict[str, Any], **options: Any) -> Search:
    options.setdefault("trials", 8)
    return validate(Search, {"space": space, **options}, ("search",))


def trials_of(
    space: dict[str, Any], spec: dict[str, Any] | None = None, **options: Any
) -> list[Trial]:
    return trial_specs(spec or binary_spec(), search(space, **options))


def refusal(call: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationFailed) as caught:
        call(*args, **kwargs)
    details = caught.value.details
    assert caught.value.message.startswith("The request is invalid at ")
    return details


def only_detail(call: Any, *args: Any, **kwargs: Any) -> tuple[list[Any], str]:
    details = refusal(call, *args, **kwargs)
    assert len(details) == 1, details
    return details[0]["loc"], details[0]["msg"]


# --- the search object itself -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc", "says"),
    [
        ({"space": {"seed": {"int": [0, 9]}}}, ["search", "trials"], "draws `trials` trials"),
        ({"trials": 0, "space": {"seed": {"int": [0, 9]}}}, ["search", "trials"],
         "greater than or equal to 1"),
        ({"trials": MAX_TRIALS + 1, "space": {"seed": {"int": [0, 9]}}}, ["search", "trials"],
         "less than or equal to 1024"),
        ({"trials": 2, "space": {}}, ["search", "space"], "at least 1 item"),
        ({"trials": 2, "method": "bayes", "space": {"seed": {"int": [0, 9]}}},
         ["search", "method"], "'random' or 'grid'"),
        ({"trials": 2, "mode": "lowest", "space": {"seed": {"int": [0, 9]}}},
         ["search", "mode"], "'min' or 'max'"),
        ({"trials": 2, "space": {"seed": {"int": [0, 9]}}, "budget": 5}, ["search", "budget"],
         "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_the_search_object_is_refused_where_it_is_wrong(
    body: dict[str, Any], loc: list[Any], says: str
) -> None:
    where, message = only_detail(validate, Search, body, ("search",))
    assert where == loc
    assert says in message


@pytest.mark.parametrize(
    ("dimension", "loc_tail", "says"),
    [
        ({"uniform": [0.5, 0.5]}, [], "uniform needs lo < hi. Received: uniform=[0.5, 0.5]"),
        ({"uniform": [0.9, 0.1]}, [], "uniform needs lo < hi. Received: uniform=[0.9, 0.1]"),
        ({"log_uniform": [0, 0.1]}, [], "log_uniform needs 0 < lo < hi"),
        ({"log_uniform": [-1, 0.1]}, [], "Received: log_uniform=[-1.0, 0.1]"),
        ({"int": [5, 5]}, [], "int needs lo < hi. Received: int=[5, 5]"),
        ({"int": [1.5, 3]}, ["int", 0], "valid integer. Received: 1.5"),
        ({"int": [1, "3"]}, ["int", 1], "valid integer. Received: '3'"),
        ({"uniform": [True, 2]}, ["uniform", 0], "valid number. Received: True"),
        ({"uniform": [0.1]}, ["uniform", 1], "Field required"),
        ({"choice": []}, ["choice"], "at least 1 item"),
        ({"choice": list(range(65))}, ["choice"], "at most 64 items"),
        ({"choice": [16, [32]]}, ["choice", 1], "JSON scalars"),
        ({"choice": [16], "int": [1, 2]}, [], "exactly one of {'choice'"),
        ({}, [], "Received: none"),
        ({"normal": [0, 1]}, ["normal"], "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_a_malformed_range_is_refused_at_its_path(
    dimension: dict[str, Any], loc_tail: list[Any], says: str
) -> None:
    body = {"trials": 4, "space": {"compile.optimizer.learning_rate": dimension}}
    where, message = only_detail(validate, Search, body, ("search",))
    assert where == ["search", "space", "compile.optimizer.learning_rate", *loc_tail]
    assert says in message


def test_a_grid_takes_only_choices_every_combination_and_at_most_1024() -> None:
    grid = {"layers.0.units": {"choice": [16, 32]}, "seed": {"int": [0, 9]}}
    where, message = only_detail(search, grid, method="grid", trials=None)
    assert where == ["search", "space", "seed"]
    assert "must be a `choice`. Received: seed={'int': ...}" in message

    wide = {f"layers.{index}.units": {"choice": list(range(1, 12))} for index in range(3)}
    where, message = only_detail(search, wide, method="grid", trials=None)
    assert where == ["search", "space"]
    assert "The grid has 1,331 combinations; at most 1024" in message

    pair = {"layers.0.units": {"choice": [16, 32]}, "seed": {"choice": [1, 2, 3]}}
    where, message = only_detail(search, pair, method="grid", trials=5)
    assert where == ["search", "trials"]
    assert "every combination, 6 here" in message and "Received: trials=5" in message
    assert search(pair, method="grid", trials=6).grid_size == 6


def test_halving_rungs_increase_keep_is_a_fraction_and_rungs_end_before_the_last_epoch() -> None:
    space = {"seed": {"int": [0, 9]}}
    where, message = only_detail(search, space, halving={"rungs": [10, 10], "keep": 0.25})
    assert where == ["search", "halving", "rungs", 1]
    assert "increasing order. Received: [10, 10]" in message
    for keep in (0, 1, 1.5):
        where, _ = only_detail(search, space, halving={"rungs": [10], "keep": keep})
        assert where == ["search", "halving", "keep"]
    where, _ = only_detail(search, space, halving={"rungs": [], "keep": 0.5})
    assert where == ["search", "halving", "rungs"]

    where, message = only_detail(trials_of, space, halving={"rungs": [10, 30], "keep": 0.25})
    assert where == ["search", "halving", "rungs", 1]
    assert "below fit.epochs (30 in trial 0). Received: rungs=[10, 30]" in message
    # A trial with fewer epochs than the rungs is refused even when the base has enough.
    epochs = {"fit.epochs": {"choice": [40, 20]}}
    where, message = only_detail(
        trials_of, epochs, method="grid", trials=None, halving={"rungs": [10, 25], "keep": 0.5}
    )
    assert where == ["search", "halving", "rungs", 1]
    assert "(20 in trial 1)" in message
    kept = trials_of(space, halving={"rungs": [10, 20], "keep": 0.25})
    assert len(kept) == 8


# --- paths into the spec ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("layers.9.units", "layers.9 names no layer: the spec has 4 layers, layers.0 to layers.3"),
        ("layers.first.units", "layers.first names no layer"),
        ("compile.optimiser", "compile has no field 'optimiser'; its fields are ['loss', "
                              "'optimizer', 'metrics']. Did you mean 'optimizer'?"),
        ("fit.batchsize", "fit has no field 'batchsize'; its fields are ['epochs', 'batch_size',"),
        ("learning_rate", "The spec has no field 'learning_rate'"),
        ("layers.3.rate", "layers.3 has no field 'rate'"),
        ("compile.optimizer.learning_rate.max", "compile.optimizer.learning_rate is a value, not "
                                                "an object: it has no field 'max'"),
        ("search.trials", "`search` is the search itself, beside the spec"),
        ("input_shape", "input_shape cannot be searched: the input shape is the dataset's"),
        ("input_shape.0", "input_shape cannot be searched"),
        ("layers.0.type", "layers.0.type cannot be searched: a layer's type decides"),
        ("device", "device cannot be searched"),
        ("compile.metrics", "compile.metrics cannot be searched"),
        ("layers", "layers is the list of layers: search a field of one, e.g. layers.0.units"),
        ("layers.2", "layers.2 is a whole layer: search one of its fields, e.g. layers.2.units"),
        ("fit", "fit is an object: search one of its fields, e.g. fit.epochs"),
        ("fit.early_stopping", "fit.early_stopping is an object"),
        ("layers.0.kernel_regularizer", "layers.0.kernel_regularizer is an object"),
    ],
)  # fmt: skip
def test_a_path_that_names_no_searchable_field_is_refused_at_that_path(
    path: str, says: str
) -> None:
    where, message = only_detail(trials_of, {path: {"choice": [1]}})
    assert where == ["search", "space", path]
    assert says in message
    assert message.endswith(f"Received: {path}")


def test_every_bad_path_is_listed_and_nothing_is_drawn_before() -> None:
    space = {
        "seed": {"int": [0, 9]},
        "layers.9.units": {"choice": [8]},
        "fit.batchsize": {"choice": [8]},
    }
    details = refusal(trials_of, space)
    assert [detail["loc"] for detail in details] == [
        ["search", "space", "layers.9.units"],
        ["search", "space", "fit.batchsize"],
    ]


def test_a_path_to_a_field_the_spec_leaves_out_is_searchable() -> None:
    space = {
        "fit.validation_split": {"choice": [0.25]},
        "layers.0.kernel_regularizer.l2": {"uniform": [0.0, 0.01]},
        "fit.early_stopping.patience": {"int": [2, 4]},
        "layers.0.use_bias": {"choice": [False]},
    }
    spec = binary_spec()
    del spec["seed"]
    original = copy.deepcopy(spec)
    for trial in trials_of(space, spec, trials=3):
        assert trial.spec.fit.validation_split == 0.25
        regularizer = trial.spec.layers[0].kernel_regularizer  # type: ignore[union-attr]
        assert regularizer is not None and 0 <= regularizer.l2 < 0.01 and regularizer.l1 == 0
        assert trial.spec.fit.early_stopping is not None
        assert 2 <= trial.spec.fit.early_stopping.patience <= 4
        assert trial.spec.fit.early_stopping.monitor == "val_loss"
    assert spec == original  # the job's own spec is left as it came


def test_an_invalid_base_spec_is_refused_at_the_spec() -> None:
    spec = binary_spec()
    spec["layers"][0]["units"] = 0
    where, message = only_detail(trials_of, {"seed": {"int": [0, 9]}}, spec)
    assert where == ["spec", "layers", 0, "units"]
    assert "greater than or equal to 1" in message


# --- drawn values the spec refuses ------------------------------------------------------


def test_a_drawn_value_the_spec_refuses_is_a_422_at_its_path_naming_the_value() -> None:
    where, message = only_detail(
        trials_of, {"layers.0.units": {"choice": [64, 0]}}, method="grid", trials=None
    )
    assert where == ["search", "space", "layers.0.units"]
    assert message.startswith("layers.0.units=0 (trial 1): Input should be greater than or equal")

    where, message = only_detail(
        trials_of, {"layers.1.rate": {"uniform": [0.0, 1.5]}}, with_dropout(binary_spec())
    )
    assert where == ["search", "space", "layers.1.rate"]
    assert "Input should be less than 1" in message
    drawn = float(message.split("=", 1)[1].split(" ", 1)[0])
    assert 1 <= drawn < 1.5


def test_a_value_refused_elsewhere_in_the_spec_is_blamed_on_the_path_that_caused_it() -> None:
    spec = binary_spec()
    spec["compile"]["optimizer"] = {"name": "sgd", "momentum": 0.9}
    where, message = only_detail(
        trials_of, {"compile.optimizer": {"choice": ["sgd", "adam"]}}, spec, method="grid",
        trials=None,
    )  # fmt: skip
    assert where == ["search", "space", "compile.optimizer"]
    assert message.startswith(
        "compile.optimizer='adam' (trial 1) makes the spec invalid at compile.optimizer.momentum:"
        " `momentum` applies to sgd and rmsprop only"
    )
    # Two wide layers overflow the parameter bound, which the spec checks on all layers:
    # the first of them is named.
    wide = {"layers.1.units": {"choice": [16_384]}, "layers.2.units": {"choice": [16_384]}}
    where, message = only_detail(trials_of, wide, trials=1)
    assert where == ["search", "space", "layers.1.units"]
    assert "makes the spec invalid at layers: The network has" in message


def test_every_refused_path_is_listed_once() -> None:
    space = {
        "layers.0.units": {"choice": [0]},
        "layers.1.rate": {"uniform": [1.0, 2.0]},
        "seed": {"int": [0, 9]},
    }
    details = refusal(trials_of, space, with_dropout(binary_spec()), trials=16)
    assert [detail["loc"] for detail in details] == [
        ["search", "space", "layers.0.units"],
        ["search", "space", "layers.1.rate"],
    ]
    assert details[0]["msg"].startswith("layers.0.units=0 (trial 0)")


# --- the metric -------------------------------------------------------------------------


def test_a_metric_the_trials_do_not_report_is_refused() -> None:
    space = {"seed": {"int": [0, 9]}}
    where, message = only_detail(trials_of, space, metric="val_loss")
    assert where == ["search", "metric"]
    assert "needs fit.validation_split above 0" in message
    assert "Received: metric='val_loss', trial 0 has validation_split=0.0" in message

    where, message = only_detail(trials_of, space, metric="auc")
    assert where == ["search", "metric"]
    assert message.endswith("one the trials report: ['accuracy', 'loss']. Received: metric='auc'")

    where, message = only_detail(trials_of, space, binary_spec(validation_split=0.2), metric="f1")
    assert "['accuracy', 'loss', 'val_accuracy', 'val_loss']" in message

    # Every trial must validate, not only the base.
    split = {"fit.validation_split": {"choice": [0.2, 0.0]}}
    where, message = only_detail(trials_of, split, method="grid", trials=None, metric="val_loss")
    assert where == ["search", "metric"]
    assert "trial 1 has validation_split=0.0" in message


@pytest.mark.parametrize(
    ("fit", "options", "expected"),
    [
        ({}, {}, ("loss", "min")),
        ({"validation_split": 0.2}, {}, ("val_loss", "min")),
        ({"validation_split": 0.2}, {"metric": "val_accuracy"}, ("val_accuracy", "max")),
        ({}, {"metric": "accuracy"}, ("accuracy", "max")),
        ({}, {"metric": "accuracy", "mode": "min"}, ("accuracy", "min")),
        ({"validation_split": 0.2}, {"metric": "loss"}, ("loss", "min")),
    ],
)
def test_the_metric_and_mode_default_from_the_spec(
    fit: dict[str, Any], options: dict[str, Any], expected: tuple[str, str]
) -> None:
    chosen = search({"seed": {"int": [0, 9]}}, **options)
    assert ranking(chosen, trial_specs(binary_spec(**fit), chosen)) == expected


def test_the_default_metric_is_loss_when_some_trial_does_not_validate() -> None:
    space = {"fit.validation_split": {"choice": [0.2, 0.0]}}
    chosen = search(space, method="grid", trials=None)
    assert ranking(chosen, trial_specs(binary_spec(), chosen)) == ("loss", "min")


def test_auc_precision_and_recall_rank_highest_first() -> None:
    spec = binary_spec(validation_split=0.25)
    spec["compile"]["metrics"] = ["auc", "precision", "recall", "mse"]
    for metric, mode in [("val_auc", "max"), ("precision", "max"), ("val_recall", "max"),
                         ("val_mse", "min")]:  # fmt: skip
        chosen = search({"seed": {"int": [0, 9]}}, metric=metric, trials=1)
        assert ranking(chosen, trial_specs(spec, chosen)) == (metric, mode)


# --- drawing ----------------------------------------------------------------------------

SPACE = {
    "compile.optimizer.learning_rate": {"log_uniform": [0.0001, 1.0]},
    "layers.1.rate": {"uniform": [0.0, 0.5]},
    "layers.0.units": {"choice": [32, 64, 128]},
    "seed": {"int": [0, 3]},
}


def drawn(seed: int, trials: int = 256) -> list[dict[str, Any]]:
    return [trial.params for trial in trials_of(SPACE, with_dropout(binary_spec()), trials=trials,
                                                seed=seed)]  # fmt: skip


def test_random_draws_are_the_same_for_a_seed_and_differ_across_seeds() -> None:
    first = drawn(seed=7)
    assert first == drawn(seed=7)
    assert first != drawn(seed=8)
    assert drawn(seed=7, trials=10) == first[:10]  # more trials extend the same sequence
    assert all(list(params) == list(SPACE) for params in first)


def test_random_draws_stay_in_their_ranges_with_their_types() -> None:
    params = drawn(seed=0)
    rates = [p["layers.1.rate"] for p in params]
    assert all(isinstance(rate, float) and 0.0 <= rate < 0.5 for rate in rates)
    assert min(rates) < 0.05 and max(rates) > 0.45
    seeds = [p["seed"] for p in params]
    assert all(type(seed) is int for seed in seeds)
    assert set(seeds) == {0, 1, 2, 3}  # both bounds included
    units = [p["layers.0.units"] for p in params]
    assert set(units) == {32, 64, 128}


def test_log_uniform_spreads_evenly_over_the_decades() -> None:
    rates = [p["compile.optimizer.learning_rate"] for p in drawn(seed=0)]
    assert all(isinstance(rate, float) and 0.0001 <= rate <= 1.0 for rate in rates)
    per_decade = [sum(1 for rate in rates if 10 ** (d - 4) <= rate < 10 ** (d - 3))
                  for d in range(4)]  # fmt: skip
    # 64 expected in each; a plain uniform draw would put about 230 in the top decade.
    assert all(40 <= count <= 90 for count in per_decade), per_decade


def test_a_grid_is_every_combination_first_dimension_slowest() -> None:
    space = {
        "layers.0.units": {"choice": [16, 32]},
        "compile.optimizer.learning_rate": {"choice": [0.1, 0.01, 0.001]},
        "fit.shuffle": {"choice": [True, False]},
    }
    trials = trials_of(space, method="grid", trials=None)
    assert [trial.index for trial in trials] == list(range(12))
    expected = itertools.product([16, 32], [0.1, 0.01, 0.001], [True, False])
    assert [tuple(trial.params.values()) for trial in trials] == list(expected)
    assert trials[5].spec.layers[0].units == 16  # type: ignore[union-attr]
    assert trials[5].spec.compile.optimizer_options.learning_rate == 0.001
    assert trials[5].spec.fit.shuffle is False


# --- writing values into the spec -------------------------------------------------------


def test_a_learning_rate_turns_an_optimizer_name_into_its_object_form() -> None:
    space = {"compile.optimizer.learning_rate": {"log_uniform": [0.0001, 0.1]}}
    for trial in trials_of(space):
        optimizer = trial.spec.compile.optimizer
        assert isinstance(optimizer, Optimizer)
        assert optimizer.name == "adam"
        assert optimizer.learning_rate == trial.params["compile.optimizer.learning_rate"]
    spec = binary_spec()
    del spec["compile"]["optimizer"]  # the default, adam
    assert all(trial.spec.compile.optimizer_options.name == "adam"
               for trial in trials_of(space, spec))  # fmt: skip


def test_an_optimizer_object_keeps_its_other_options() -> None:
    spec = binary_spec()
    spec["compile"]["optimizer"] = {"name": "sgd", "momentum": 0.9, "nesterov": True}
    trial = trials_of({"compile.optimizer.learning_rate": {"choice": [0.05]}}, spec)[0]
    assert trial.spec.compile.optimizer == Optimizer(
        name="sgd", learning_rate=0.05, momentum=0.9, nesterov=True
    )


@pytest.mark.parametrize("name_first", [True, False])
def test_an_optimizer_name_and_its_learning_rate_combine_in_either_order(
    name_first: bool,
) -> None:
    dimensions = [
        ("compile.optimizer", {"choice": ["sgd", "rmsprop"]}),
        ("compile.optimizer.learning_rate", {"choice": [0.1, 0.01]}),
    ]
    space = dict(dimensions if name_first else dimensions[::-1])
    trials = trials_of(space, method="grid", trials=None)
    got = {(trial.spec.compile.optimizer_options.name,
            trial.spec.compile.optimizer_options.learning_rate) for trial in trials}  # fmt: skip
    assert got == set(itertools.product(["sgd", "rmsprop"], [0.1, 0.01]))


def test_a_search_dumps_back_to_what_it_was_given() -> None:
    body = {"trials": 4, "method": "random", "seed": 5, "metric": "loss", "mode": "min",
            "space": {"seed": {"int": [0, 9]}, "layers.0.units": {"choice": [8, 16]}},
            "halving": {"rungs": [5, 10], "keep": 0.5}}  # fmt: skip
    dumped = validate(Search, body).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped == body


# --- grouping ---------------------------------------------------------------------------


def test_learning_rate_by_seed_is_one_group() -> None:
    space = {
        "compile.optimizer.learning_rate": {"choice": [10**-k for k in range(1, 9)]},
        "seed": {"choice": list(range(8))},
    }
    trials = trials_of(space, method="grid", trials=None)
    assert len(trials) == 64
    assert shape_groups(trials) == [list(range(64))]


def test_values_only_the_program_takes_as_numbers_keep_one_group() -> None:
    spec = with_dropout(binary_spec())
    spec["compile"]["optimizer"] = {"name": "sgd", "momentum": 0.5}
    spec["layers"][0]["kernel_regularizer"] = {"l2": 0.001}
    space = {
        "layers.1.rate": {"uniform": [0.0, 0.5]},
        "layers.0.kernel_regularizer.l2": {"log_uniform": [1e-5, 1e-2]},
        "layers.0.kernel_regularizer.l1": {"uniform": [0.0, 0.01]},
        "compile.optimizer.momentum": {"uniform": [0.1, 0.95]},
        "compile.optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
        "compile.optimizer.weight_decay": {"uniform": [0.0, 0.1]},
        "seed": {"int": [0, 1000]},
    }
    assert shape_groups(trials_of(space, spec, trials=32)) == [list(range(32))]


def test_units_by_batch_size_is_one_group_per_combination() -> None:
    space = {
        "layers.0.units": {"choice": [16, 32]},
        "fit.batch_size": {"choice": [10, 20]},
        "seed": {"choice": [1, 2]},
    }
    trials = trials_of(space, method="grid", trials=None)
    assert shape_groups(trials) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    for group in shape_groups(trials):
        shapes = {(trials[i].params["layers.0.units"], trials[i].params["fit.batch_size"])
                  for i in group}  # fmt: skip
        assert len(shapes) == 1


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("compile.optimizer", ["adam", "sgd"]),
        ("compile.loss", ["binary_crossentropy", "mean_squared_error"]),
        ("layers.0.activation", ["relu", "tanh"]),
        ("layers.0.use_bias", [True, False]),
        ("fit.epochs", [20, 30]),
        ("fit.validation_split", [0.0, 0.2]),
        ("fit.shuffle", [True, False]),
        ("precision", ["float32", "mixed_bfloat16"]),
    ],
)
def test_a_different_program_is_a_different_group(path: str, values: list[Any]) -> None:
    space = {path: {"choice": values}, "seed": {"choice": [1, 2]}}
    trials = trials_of(space, method="grid", trials=None)
    assert shape_groups(trials) == [[0, 1], [2, 3]]


def test_sgd_momentum_zero_and_non_zero_are_different_groups() -> None:
    spec = binary_spec()
    spec["compile"]["optimizer"] = {"name": "sgd"}
    trials = trials_of(
        {"compile.optimizer.momentum": {"choice": [0.0, 0.9, 0.5]}}, spec, method="grid",
        trials=None,
    )  # fmt: skip
    assert shape_groups(trials) == [[0], [1, 2]]


def test_groups_hold_trial_indices_in_order_of_their_first_trial() -> None:
    trials = trials_of({"layers.0.units": {"choice": [8, 16]}}, trials=24, seed=1)
    groups = shape_groups(trials)
    assert sorted(index for group in groups for index in group) == list(range(24))
    assert [group[0] for group in groups] == sorted(group[0] for group in groups)
    for group in groups:
        assert group == sorted(group)
        assert len({trials[index].params["layers.0.units"] for index in group}) == 1
    assert len(groups) == 2
