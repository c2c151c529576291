"""GPUs are read where Slurm keeps them: the nodes' GRES (``scontrol show node``), not only a
partition's TRES, which lists GPUs only when accounting tracks ``gres/gpu`` (issue 24 item 6)."""

from __future__ import annotations

from pathlib import Path

from experiments.backends.slurm.limits import (
    check_job,
    gres_gpus,
    parse_node_gpus,
    parse_partitions,
)

DATA = Path(__file__).parent / "data"


def test_gres_forms() -> None:
    assert gres_gpus("gpu:A100:8") == 8
    assert gres_gpus("gpu:8") == 8
    assert gres_gpus("gpu:a100:4(S:0-1),gpu:v100:2(S:0,1)") == 6
    assert gres_gpus("gpu:a100:4(S:0-1),mps:400,shard:8") == 4
    assert gres_gpus("(null)") == 0 and gres_gpus("") == 0


def test_a_partition_without_gpu_tres_has_the_gpus_of_its_nodes() -> None:
    """The default test cluster, as Slurm is by default: no gres/gpu in the partition TRES."""
    parts = parse_partitions((DATA / "default_scontrol_show_partition.txt").read_text())
    nodes = parse_node_gpus((DATA / "default_scontrol_show_node.txt").read_text())
    gpu = parts["gpu"]
    assert gpu.gpus is None and nodes["gpu"] == [8] and nodes["cpu"] == [8]
    assert check_job(gpu, 600, 4, 2, node_gpus=nodes["gpu"]) == []
    assert check_job(gpu, 600, 4, 8, node_gpus=nodes["gpu"]) == []
    [problem] = check_job(gpu, 600, 4, 9, node_gpus=nodes["gpu"])
    assert "nodes have at most 8 GPUs each" in problem and "asks 9 per node" in problem
    [problem] = check_job(gpu, 600, 4, 2, nodes=2, node_gpus=nodes["gpu"])
    assert "1 node(s) with 2 GPUs" in problem and "asks 2" in problem
    # nodes not read: a TRES without GPUs says nothing either way
    assert check_job(gpu, 600, 4, 2) == []


def test_a_partition_whose_nodes_have_no_gpus() -> None:
    text = ("NodeName=c1 Gres=(null) Partitions=cpu State=IDLE\n"
            "NodeName=g1 Gres=gpu:A100:4 Partitions=gpu,all State=IDLE\n"
            "NodeName=g2 Gres=gpu:8(S:0-1) Partitions=gpu,all State=IDLE\n")
    nodes = parse_node_gpus(text)
    assert nodes == {"cpu": [0], "gpu": [4, 8], "all": [4, 8]}
    parts = parse_partitions("PartitionName=cpu MaxTime=UNLIMITED TRES=cpu=32,mem=1000M\n")
    [problem] = check_job(parts["cpu"], 600, 1, 1, node_gpus=nodes["cpu"])
    assert "nodes have no GPUs" in problem and "choose a GPU partition" in problem
