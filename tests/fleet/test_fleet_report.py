"""`mlops report` through the real command line, over the real --json outputs of driver-check
(every recorded snapshot in tests/fixtures/driver), gpu and oom-check."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from fleet_helpers import GPU_FIXTURES, TESTS, driver_names, driver_report
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlops_cli.driver.outlook import outlook
from mlops_cli.fleet.hostlist import compress
from mlops_cli.gpu.nvml import SnapshotNvml
from mlops_cli.gpu.status import collect


def write_doc(folder: Path, node: str, doc: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{node}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    return {name: driver_report(name).to_json() for name in driver_names()}


@pytest.fixture
def every_snapshot(tmp_path, docs) -> Path:
    for name, doc in docs.items():
        write_doc(tmp_path / "fleet", name, doc)
    return tmp_path / "fleet"


def test_report_over_every_recorded_snapshot(mlops, every_snapshot, docs):
    r = mlops("report", str(every_snapshot), "--json")
    assert r.returncode == 1, r  # at least one node is broken
    out = r.json()
    assert out["nodes_total"] == len(docs) and out["unusable"] == []
    statuses = Counter(d["status"] for d in docs.values())
    assert out["by_status"] == {
        "ok": statuses["ok"],
        "problem": statuses["problem"],
        "no-gpu": statuses["no-gpu"],
        "failed": 0,
    }
    per_id = Counter(i for d in docs.values() for i in {f["id"] for f in d["findings"]})
    assert {k: v["nodes"] for k, v in out["by_finding"].items()} == dict(per_id)
    assert set(out["broken"]) == {n for n, d in docs.items() if d["status"] == "problem"}
    lost = set(out["no_gpu_after_reboot"])
    assert lost == {n for n, d in docs.items() if outlook(d).after_reboot is False}
    assert {"next-boot-headers-missing", "nouveau", "headers-missing"} <= lost
    assert not lost & {"healthy", "mismatch-pending-reboot", "reboot-required", "no-gpu"}
    # every node with findings is in exactly one group, whose members have the same findings and plan
    grouped = Counter(n for g in out["groups"] for n in g["nodes"])
    assert set(grouped) == {n for n, d in docs.items() if d["findings"]} and set(grouped.values()) == {1}
    for g in out["groups"]:
        for node in g["nodes"]:
            d = docs[node]
            assert [{"id": f["id"], "severity": f["severity"]} for f in d["findings"]] == g["findings"]
            argv = [s["argv"] for f in d["findings"] for s in f["fix"]["steps"]]
            assert [s["argv"] for s in g["plan"]["steps"]] == list({tuple(a): a for a in argv}.values())
    nodes = {n["node"]: n for n in out["nodes"]}
    assert nodes["next-boot-headers-missing"]["checks"]["driver-check"]["works_now"] is True
    assert nodes["next-boot-headers-missing"]["gpu_after_reboot"] is False
    assert nodes["mismatch-pending-reboot"]["gpu_after_reboot"] is True
    assert nodes["no-gpu"]["gpu_after_reboot"] is None

    text = mlops("report", str(every_snapshot))
    assert text.returncode == 1 and text.stdout.startswith("PROBLEM: "), text
    assert "works now but the next boot loses the GPU" in text.stdout
    assert "$ sudo apt-get install -y linux-headers-6.8.0-45-generic" in text.stdout


def test_identical_nodes_form_one_group_with_one_plan(mlops, tmp_path, docs):
    fleet = tmp_path / "fleet"
    for i in range(1, 51):
        write_doc(fleet, f"gpu{i:03d}", docs["next-boot-headers-missing"])
    for i in range(51, 81):
        write_doc(fleet, f"gpu{i:03d}", docs["healthy"])
    for i in (90, 91, 95):
        write_doc(fleet, f"gpu{i:03d}", docs["nouveau"])
    r = mlops("report", str(fleet), "--json")
    assert r.returncode == 1, r
    out = r.json()
    assert out["by_status"] == {"ok": 30, "problem": 53, "no-gpu": 0, "failed": 0}
    assert [(g["hostlist"], len(g["nodes"])) for g in out["groups"]] == [("gpu[001-050]", 50), ("gpu[090-091,095]", 3)]
    headers = out["groups"][0]
    assert headers["works_now"] is True and headers["gpu_after_reboot"] is False
    assert headers["plan"]["steps"][0]["argv"] == ["apt-get", "install", "-y", "linux-headers-6.8.0-45-generic"]
    assert len(out["no_gpu_after_reboot"]) == 53
    text = mlops("report", str(fleet)).stdout
    assert "50 node(s), driver-check problem, works now but the next boot loses the GPU" in text
    assert "nodes: gpu[001-050]" in text and text.count("$ sudo apt-get install -y linux-headers-6.8.0-45-generic") == 1


def test_a_healthy_fleet_is_exit_0_and_an_unreadable_file_makes_it_exit_2(mlops, tmp_path, docs):
    fleet = tmp_path / "fleet"
    for i in range(3):
        write_doc(fleet, f"gpu{i}", docs["healthy"])
    write_doc(fleet, "gpu3", docs["reboot-required"])  # a warning is not broken
    r = mlops("report", str(fleet), "--json")
    assert r.returncode == 0 and r.json()["broken"] == [] and r.json()["by_status"]["ok"] == 4, r
    (fleet / "gpu4.json").write_text('{"status": "ok", "kernel": ')  # cut short by a full disk
    r = mlops("report", str(fleet), "--json")
    assert r.returncode == 2, r  # no all-clear while a node's answer is missing
    out = r.json()
    assert out["nodes_total"] == 4 and out["broken"] == []
    assert [u["input"].endswith("gpu4.json") for u in out["unusable"]] == [True]
    assert "not valid JSON" in out["unusable"][0]["reason"]
    text = mlops("report", str(fleet))
    assert text.returncode == 2 and text.stdout.startswith("INCOMPLETE: 4 node(s): 4 ok"), text
    assert "gpu4.json: the file is not valid JSON" in text.stdout


def test_hostile_and_foreign_files_are_named_and_skipped(mlops, tmp_path, docs):
    fleet = tmp_path / "fleet"
    write_doc(fleet, "gpu1", docs["nouveau"])
    write_doc(fleet, "gpu2", docs["healthy"])
    (fleet / "binary.json").write_bytes(b"\x00\xff\xfe" * 100)
    (fleet / "deep.json").write_text("[" * 5000 + "]" * 5000)
    (fleet / "nan.json").write_text('{"status": NaN}')
    (fleet / "other.json").write_text(json.dumps({"name": "not an mlops document"}))
    (fleet / "empty.json").write_text("")
    (fleet / "README").write_text("collected by pdsh\n")
    (fleet / ".hidden.json").write_text("not read")
    (fleet / "sub").mkdir()
    write_doc(fleet / "sub", "gpu3", docs["healthy"])
    escape = "gpu\x1b[2J9"
    write_doc(fleet, escape, docs["healthy"])
    r = mlops("report", str(fleet), "--json")
    assert r.returncode == 1, r
    out = r.json()
    assert out["nodes_total"] == 4 and out["broken"] == ["gpu1"]
    reasons = {Path(u["input"]).name: u["reason"] for u in out["unusable"]}
    assert set(reasons) == {"binary.json", "deep.json", "nan.json", "other.json", "empty.json", "README"}
    assert "not UTF-8" in reasons["binary.json"] and "nested" in reasons["deep.json"]
    assert "NaN" in reasons["nan.json"] and "not the --json output" in reasons["other.json"]
    text = mlops("report", str(fleet)).stdout
    assert "\x1b" not in text and "\x1b" not in r.stdout  # the escape in a file name is shown, never sent
    assert "gpu\\x1b[2J9" in [n["node"] for n in out["nodes"]]


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "give the JSON outputs"),
        (["{tmp}/missing"], "no such file or folder"),
        (["{tmp}/empty"], "no mlops JSON output found in 0 input"),
        (["{tmp}/junk.json"], "not valid JSON"),
        (["-", "-"], "stdin (-) can be read once"),
    ],
)
def test_no_usable_input_is_one_error_line_exit_2(mlops, tmp_path, args, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.json").write_text("<html>")
    r = mlops("report", *[a.format(tmp=tmp_path) for a in args], "--json", input="")
    assert r.returncode == 2 and r.no_report(), r
    assert r.stderr.count("error:") == 1 and words in r.stderr, r


def test_pdsh_output_on_stdin(mlops, docs):
    """What `pdsh -w gpu[1-3] mlops driver-check --json` prints: each host's lines prefixed with
    'host: ', lines of different hosts interleaved as they arrive."""
    lines = {
        h: json.dumps(docs[n], indent=2).splitlines()
        for h, n in (("gpu1", "healthy"), ("gpu2", "next-boot-headers-missing"), ("gpu3", "nouveau"))
    }
    out: list[str] = []
    for i in range(max(len(v) for v in lines.values())):
        out.extend(f"{h}: {v[i]}" for h, v in lines.items() if i < len(v))
    r = mlops("report", "-", "--json", input="\n".join(out) + "\n")
    assert r.returncode == 1, r
    rep = r.json()
    assert sorted(n["node"] for n in rep["nodes"]) == ["gpu1", "gpu2", "gpu3"]
    assert sorted(rep["no_gpu_after_reboot"]) == ["gpu2", "gpu3"]
    # a host whose output was cut off is named, the others still count
    cut = [ln for ln in out if not ln.startswith("gpu1: ")] + [f"gpu1: {ln}" for ln in lines["gpu1"][:-5]]
    r = mlops("report", "-", "--json", input="\n".join(cut) + "\ngpu4: Permission denied\n")
    assert r.returncode == 1 and {u["input"] for u in r.json()["unusable"]} >= {"stdin (gpu1)", "stdin (gpu4)"}, r
    assert sorted(n["node"] for n in r.json()["nodes"]) == ["gpu2", "gpu3"]


def test_gpu_oom_check_and_failed_checks_in_one_fleet(mlops, tmp_path, docs):
    fleet = tmp_path / "fleet"
    write_doc(fleet / "driver", "gpu1", docs["healthy"])
    write_doc(fleet / "driver", "gpu2", docs["healthy"])
    for node, fixture in (("gpu1", "a100-8gpu-processes"), ("gpu2", "a800-2gpu"), ("gpu3", "a100-8gpu-processes")):
        status = collect(SnapshotNvml.load(str(GPU_FIXTURES / f"{fixture}.json")), fixture)
        write_doc(fleet / "gpu", node, status.to_json())
    oom = mlops(
        "oom-check",
        str(TESTS / "fixtures" / "mem" / "tiny-llama"),
        "--gpu-mem",
        "1GiB",
        "--batch",
        "64",
        "--seq-len",
        "8192",
        "--json",
    )
    assert oom.returncode == 1, oom
    (fleet / "oom").mkdir()
    (fleet / "oom" / "gpu3.json").write_text(oom.stdout)
    failed = mlops("driver-check", "--snapshot", str(tmp_path / "nope.json"), "--json")
    assert failed.returncode == 2 and "error" in failed.json(), failed
    (fleet / "driver" / "gpu4.json").write_text(failed.stdout)
    r = mlops("report", str(fleet), "--json")
    assert r.returncode == 1, r
    out = r.json()
    nodes = {n["node"]: n for n in out["nodes"]}
    assert set(nodes["gpu1"]["checks"]) == {"driver-check", "gpu"} and nodes["gpu1"]["status"] == "ok"
    assert nodes["gpu3"]["status"] == "problem" and nodes["gpu4"]["status"] == "failed"
    assert out["gpus_per_node"] == {"8": 2, "2": 1}
    kinds = {g["kind"]: g for g in out["groups"]}
    assert kinds["oom-check"]["title"] == "tiny-llama does not fit" and kinds["oom-check"]["nodes"] == ["gpu3"]
    assert kinds["oom-check"]["plan"]["steps"][0]["change"].startswith("micro-batch")
    assert kinds["error"]["nodes"] == ["gpu4"] and "nope.json" in kinds["error"]["title"]
    text = mlops("report", str(fleet)).stdout
    assert "GPUs per node: 8 on 2 node(s), 2 on 1 node(s)" in text and "check failed" in text


def test_a_node_reported_twice_is_named_once(mlops, tmp_path, docs):
    write_doc(tmp_path / "a", "gpu1", docs["nouveau"])
    write_doc(tmp_path / "b", "gpu1", docs["healthy"])
    r = mlops("report", str(tmp_path / "a"), str(tmp_path / "b"), "--json")
    out = r.json()
    assert r.returncode == 1 and out["nodes_total"] == 1 and out["broken"] == ["gpu1"], r
    assert "a second driver-check document for node gpu1" in out["unusable"][0]["reason"]


def test_ansible_fact_cache_before_ansible_2_19(mlops, tmp_path, docs):
    """ansible-core <= 2.18's jsonfile cache: a file named after the host, the facts at the top."""
    cache = tmp_path / "facts"
    cache.mkdir()
    (cache / "gpu1.example.com").write_text(
        json.dumps({"ansible_hostname": "gpu1", "mlops_driver_check": docs["nouveau"]})
    )
    (cache / "login1").write_text(json.dumps({"ansible_hostname": "login1", "ansible_distribution": "Ubuntu"}))
    r = mlops("report", str(cache), "--json")
    assert r.returncode == 1, r
    assert [n["node"] for n in r.json()["nodes"]] == ["gpu1.example.com"]
    assert "without mlops facts" in r.json()["unusable"][0]["reason"]


# --- the pieces ------------------------------------------------------------------------------


def expand(hostlist: str) -> list[str]:
    """pdsh's expansion of a host list (the subset compress() writes)."""
    names = []
    for part in re.findall(r"[^,\[]*(?:\[[^\]]*\])?[^,\[]*", hostlist):
        if not part:
            continue
        m = re.fullmatch(r"(.*)\[(.*)\](.*)", part)
        if not m:
            names.append(part)
            continue
        for rng in m.group(2).split(","):
            lo, _, hi = rng.partition("-")
            width = len(lo)
            names += [f"{m.group(1)}{n:0{width}d}{m.group(3)}" for n in range(int(lo), int(hi or lo) + 1)]
    return names


@settings(derandomize=True, max_examples=80, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda p, n, w, s: f"{p}{n:0{w}d}{s}",
                st.sampled_from(["gpu", "node-", "a", ""]),
                st.integers(0, 120),
                st.integers(1, 4),
                st.sampled_from(["", ".dc1", "-ib"]),
            ),
            st.text("abcxyz.-", min_size=1, max_size=6),
        ),
        max_size=40,
    )
)
def test_a_host_list_expands_to_the_same_nodes(names):
    assert sorted(expand(compress(names))) == sorted(set(names))


def test_a_finding_id_added_later_is_judged_by_what_it_names():
    doc = driver_report("healthy").to_json()
    doc["status"] = "problem"
    doc["findings"] = [{"id": "some_future_problem", "severity": "error"}]
    assert (outlook(doc).works_now, outlook(doc).after_reboot) == (False, False)
    doc["kernel"]["next_boot"] = "6.9.0-1-generic"
    doc["findings"] = [{"id": "some_future_problem", "severity": "error", "kernel": "6.9.0-1-generic"}]
    o = outlook(doc)
    assert (o.works_now, o.module_present, o.after_reboot, o.blocking) == (True, False, False, ("some_future_problem",))
    doc["findings"] = [{"id": "some_future_problem", "severity": "error", "kernel": doc["kernel"]["running"]}]
    o = outlook(doc)  # about the running kernel only: the next one boots without it
    assert (o.works_now, o.module_present, o.after_reboot) == (False, True, True)


# Documents that pass for a command's output by their keys but hold anything in their fields
# (a hand-edited file, another tool's output, a future schema): the summary never crashes.
_ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_FINDING = st.fixed_dictionaries(
    {"id": st.text(max_size=10) | _ANY, "severity": st.sampled_from(["error", "warning", "x"]) | _ANY},
    optional={
        "kernel": _ANY,
        "title": _ANY,
        "fix": st.fixed_dictionaries(
            {
                "steps": st.lists(
                    st.fixed_dictionaries({"argv": st.lists(_ANY, max_size=3)}, optional={"why": _ANY}), max_size=2
                )
                | _ANY
            },
            optional={"manual": _ANY},
        )
        | _ANY,
    },
)
_DRIVER = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["ok", "problem", "no-gpu", "weird"]),
        "kernel": _ANY,
        "findings": st.lists(_FINDING | _ANY, max_size=4),
    },
    optional={"driver": _ANY, "gpus": _ANY},
)
_GPU = st.fixed_dictionaries({"gpus": st.lists(_ANY, max_size=3), "gpu_count": _ANY}, optional={"driver_version": _ANY})
_OOM = st.fixed_dictionaries(
    {"fits": st.booleans(), "capacity_bytes": _ANY, "required_bytes": _ANY},
    optional={"model": _ANY, "plan": st.lists(_ANY, max_size=3) | _ANY},
)
_ERROR = st.fixed_dictionaries({"error": st.dictionaries(st.sampled_from(["message", "hint", "exit_code"]), _ANY)})


@settings(derandomize=True, max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["gpu1", "gpu2", "gpu3"]), _DRIVER | _GPU | _OOM | _ERROR), max_size=6))
@example([("gpu1", {"fits": False, "capacity_bytes": 1, "required_bytes": 2, "plan": 5})])
@example(
    [
        (
            "gpu1",
            {
                "status": "problem",
                "kernel": {},
                "findings": [{"id": "x", "severity": "error", "fix": {"steps": 5, "manual": 7}}],
            },
        )
    ]
)
@example([("gpu1", {"gpus": [], "gpu_count": True}), ("gpu1", {"error": {"message": None, "exit_code": 3}})])
def test_odd_documents_never_crash_the_summary(entries):
    import io

    from rich.console import Console

    from mlops_cli.fleet.inputs import documents_in
    from mlops_cli.fleet.report import FleetReport
    from mlops_cli.fleet.summary import summarize

    docs = []
    for i, (node, doc) in enumerate(entries):
        found, why = documents_in(doc, node, f"in{i}")
        assert found or why
        docs += found
    report = FleetReport(summarize(docs, []), [])
    json.dumps(report.to_json())
    report.render(Console(file=io.StringIO(), width=100))
    assert report.exit_code in (0, 1, 2)
