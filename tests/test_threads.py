"""Default thread count: one per physical core, as llama.cpp's default (read from sysfs topology)."""
import os

from ggsight.ggml.backend import default_threads, physical_cores


def fake_sysfs(root, siblings: dict[int, str]):
    for cpu, text in siblings.items():
        d = root / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "thread_siblings_list").write_text(text + "\n")
    return str(root)


def test_hyperthreads_count_once(tmp_path):
    sysfs = fake_sysfs(tmp_path, {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"})
    assert physical_cores([0, 1, 2, 3], sysfs) == 2
    assert physical_cores([0, 2], sysfs) == 1  # both threads of one core: one thread


def test_one_thread_per_core(tmp_path):
    sysfs = fake_sysfs(tmp_path, {0: "0", 1: "1"})
    assert physical_cores([0, 1], sysfs) == 2


def test_unreadable_topology_counts_logical_cpus(tmp_path):
    assert physical_cores([0, 1, 5], str(tmp_path / "missing")) == 3


def test_default_is_within_the_affinity():
    n = default_threads()
    assert 1 <= n <= len(os.sched_getaffinity(0))
