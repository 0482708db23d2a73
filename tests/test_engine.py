"""``scanner.engine``'s plans (pure: resources in, layout out)."""

from __future__ import annotations

import os

import pytest

from scanner.engine import environment, plan_replicas, plan_stage
from scanner.errors import ConfigError


def test_a_batch_stage_runs_actors_of_up_to_4_threads_or_one_per_gpu():
    assert (plan_stage({"CPU": 2}, "auto").actors, plan_stage({"CPU": 2}, "auto").torch_threads) == (1, 2)
    assert (plan_stage({"CPU": 16}, "auto").actors, plan_stage({"CPU": 16}, "auto").torch_threads) == (4, 4)
    assert (plan_stage({"CPU": 8, "GPU": 2}, "auto").actors, plan_stage({"CPU": 8, "GPU": 2}, "auto").num_gpus) == (2, 1)
    assert plan_stage({"CPU": 8, "GPU": 2}, "cpu").num_gpus == 0


@pytest.mark.parametrize(("cpus", "replicas", "threads", "processes", "torch_threads", "num_cpus"), [
    (2, 1, None, 2, 1, 2.0),   # the default: one single-thread model process per core
    (2, 1, 2, 1, 2, 2.0),      # --threads 2: one process whose two threads split each call
    (16, 1, None, 4, 1, 4.0),  # at most 4 cores per replica
    (16, 4, 2, 2, 2, 4.0),
    (2, 4, None, 1, 1, 0.5),   # more replicas than cores: they share, and every one can be placed
    (2, 1, 4, 1, 4, 2.0),      # more threads than cores, on request: one process, never more than asked
])
def test_a_replica_runs_one_model_process_per_threads_of_its_cores(cpus, replicas, threads, processes, torch_threads,
                                                                    num_cpus):
    plan = plan_replicas({"CPU": cpus}, "auto", replicas, threads)
    assert (plan.actors, plan.processes, plan.torch_threads, plan.num_cpus) == (replicas, processes, torch_threads,
                                                                              num_cpus)
    assert plan.num_gpus == 0 and plan.num_cpus * replicas <= cpus


def test_a_replica_with_a_gpu_runs_one_model_process():
    plan = plan_replicas({"CPU": 8, "GPU": 2}, "auto", 2)
    assert (plan.num_gpus, plan.processes) == (1, 1)
    assert plan_replicas({"CPU": 8, "GPU": 1}, "auto", 2).num_gpus == 0  # not a GPU each: all on CPU


@pytest.mark.parametrize(("replicas", "threads", "option"), [(0, None, "--replicas"), (1, 0, "--threads")])
def test_impossible_plans_name_their_option(replicas, threads, option):
    with pytest.raises(ConfigError, match=option):
        plan_replicas({"CPU": 2}, "auto", replicas, threads)


def test_environment_is_set_for_the_block_only(monkeypatch):
    monkeypatch.setenv("SCANNER_TEST_KEPT", "before")
    monkeypatch.delenv("SCANNER_TEST_NEW", raising=False)
    with pytest.raises(RuntimeError), environment({"SCANNER_TEST_KEPT": "during", "SCANNER_TEST_NEW": "1"}):
        assert os.environ["SCANNER_TEST_KEPT"] == "during" and os.environ["SCANNER_TEST_NEW"] == "1"
        raise RuntimeError("the block fails: the environment is restored all the same")
    assert os.environ["SCANNER_TEST_KEPT"] == "before" and "SCANNER_TEST_NEW" not in os.environ
