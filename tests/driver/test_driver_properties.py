"""Property tests: every driver parser takes any text; any mutation of a real snapshot gives a
diagnosis or a clean exit-2 error, never an internal error. Fixed seed, few examples."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from driver_helpers import FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_cli.driver import buildlogs, kernlog, parse, timeline
from mlops_cli.driver.check import check
from mlops_cli.errors import MlopsError
from mlops_cli.host import Snapshot, SnapshotError, SnapshotHost

SETTINGS = settings(derandomize=True, max_examples=60, deadline=None)
# Text with the characters parsers split on, and fragments of the real formats.
FRAGMENTS = st.sampled_from(
    [
        "NVRM: ",
        "nvidia/535.86.05, ",
        "6.8.0-45-generic",
        ", x86_64: installed",
        "\t",
        "ii ",
        "iF ",
        "Xid (PCI:0000:01:00): ",
        "error: ",
        "ERROR: modpost: ",
        "Kernel driver in use: ",
        "#012",
        "[  12.3] ",
        "Driver Version: ",
        "version:  ",
        "The kernel was built by: gcc (Ubuntu 11.2.0-19ubuntu1) 11.2.0",
        "2024-09-04 06:12:01 upgrade nvidia-driver-550:amd64 ",
        "saved_entry=gnulinux-",
        "\n",
        ":",
        ",",
        " ",
        "'",
        "\x1b[2J",
        "\r",
    ]
)
TEXT = st.lists(st.one_of(st.text(max_size=40), FRAGMENTS), max_size=40).map("".join)


@SETTINGS
@given(TEXT, st.integers(min_value=-1, max_value=255))
def test_text_parsers_never_raise(text, rc):
    parse.parse_dkms_status(text)
    parse.dkms_errors(text)
    parse.parse_nvidia_smi(rc, text, text[::-1])
    parse.parse_smi_query(text)
    parse.parse_lspci(text)
    parse.parse_dpkg(text)
    parse.parse_modinfo(text)
    parse.parse_proc_version(text)
    parse.parse_secure_boot(text)
    parse.parse_make_log(text)
    parse.parse_apt_log(text)
    parse.grub_default_kernel(text)
    parse.os_release(text)
    parse.version_key(text)
    buildlogs.classify(text, "/x/make.log")
    buildlogs.compiler_version(text)
    timeline.read(text, text)
    log = kernlog.KernelLog(text)
    for pattern in (kernlog.API_MISMATCH, kernlog.D3COLD, kernlog.XID_79, kernlog.KEY_REJECTED):
        log.find_all(pattern)


REAL = sorted((FIXTURES / "real").glob("*.json")) + sorted(FIXTURES.glob("*.json"))


def _mutate(doc: dict, rnd: random.Random, junk: str) -> dict:
    doc = json.loads(json.dumps(doc))
    for _ in range(rnd.randint(1, 6)):
        section = rnd.choice(["commands", "files", "dirs", "top"])
        if section == "top":
            doc[rnd.choice(["format", "commands", "files", "dirs", "captured_at"])] = rnd.choice(
                [None, 1, 2, "x", [], {}, junk, 1e308, -1, True]
            )
            continue
        table = doc.get(section)
        if not isinstance(table, dict) or not table:
            continue
        key = rnd.choice(sorted(table))
        action = rnd.randrange(5)
        if action == 0:
            del table[key]
        elif action == 1 and section == "commands" and isinstance(table[key], dict):
            table[key][rnd.choice(["rc", "stdout", "stderr"])] = rnd.choice([junk, 0, 127, 124, -9, None, [], 2**40])
        elif action == 2 and section == "files":
            table[key] = rnd.choice([None, junk, junk * 3, ""])
        elif action == 3 and section == "dirs":
            table[key] = rnd.choice([[junk], [], None, junk, [1, 2]])
        else:
            table[junk[:30] or "/x"] = rnd.choice([junk, None, {"rc": 0, "stdout": junk}, ["a"]])
    return doc


@pytest.mark.parametrize("path", REAL[::3], ids=lambda p: p.stem)
@settings(derandomize=True, max_examples=12, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), junk=TEXT)
def test_random_snapshot_mutations_give_a_result_or_a_clean_exit_2(path: Path, seed, junk):
    doc = _mutate(json.loads(path.read_text()), random.Random(seed), junk)
    try:
        snap = Snapshot.from_json(doc)
    except (SnapshotError, MlopsError) as exc:
        assert getattr(exc, "exit_code", 2) == 2
        return
    try:
        d = check(SnapshotHost(snap))
    except MlopsError as exc:
        assert exc.exit_code == 2
        return
    assert d.status in ("ok", "problem", "no-gpu")
