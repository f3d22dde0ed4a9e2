"""`mlops images match` end to end: real folders of images made with Pillow, the real command line.

The folders imitate the notes: originals (``yuantu``) and two model outputs whose file names do
not correspond (``Effect_ox1``: blurred, resized, recompressed; ``Effect_pf``: colour-shifted,
plus a distractor). The ground truth is known because the outputs are made from the originals.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.images.conftest import needs_extra

pytestmark = needs_extra
np = pytest.importorskip("numpy", reason="the images extra is not installed")
pytest.importorskip("PIL", reason="the images extra is not installed")

from PIL import Image  # noqa: E402
from tests.images import synth  # noqa: E402

N = 12


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> dict:
    """yuantu/000.jpg..011.jpg (160x120); Effect_ox1 (120x90 JPEGs), Effect_pf (PNGs, one
    distractor); returns the folders and the truth {reference: {folder: file}}."""
    root = tmp_path_factory.mktemp("notes")
    ox_names = synth.shuffled_names(N, 1, "ox")
    pf_names = synth.shuffled_names(N, 2, "pf", "png")
    truth = {}
    for i in range(N):
        pic = synth.picture(i)
        ref = f"{i:03d}.jpg"
        synth.save(pic, root / "yuantu" / ref, quality=92)
        synth.save(
            synth.recompress(synth.resize(synth.blur(pic, 1.5), 0.75)), root / "Effect_ox1" / ox_names[i], quality=85
        )
        synth.save(synth.colour_shift(pic), root / "Effect_pf" / pf_names[i])
        truth[ref] = {"Effect_ox1": ox_names[i], "Effect_pf": pf_names[i]}
    synth.save(synth.picture(1000), root / "Effect_pf" / "pf_distractor.png")
    (root / "Effect_pf" / "notes.txt").write_text("not an image\n")
    return {"root": root, "truth": truth}


def folders(notes: dict, *names: str) -> list[str]:
    return [str(notes["root"] / n) for n in names]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return list(csv.DictReader(fh))


def paired(doc: dict) -> dict:
    """{reference: {folder name: file}} from the JSON document."""
    return {s["reference"]: {Path(m["folder"]).name: m["file"] for m in s["matches"]} for s in doc["strips"]}


@pytest.mark.parametrize("metric", ["mse", "ssim", "phash"])
def test_pairs_the_notes_folders_and_writes_strips_and_csv(mlops, notes, tmp_path, metric):
    out = tmp_path / "save"
    r = mlops(
        "images",
        "match",
        *folders(notes, "yuantu", "Effect_ox1", "Effect_pf"),
        "-o",
        str(out),
        "--metric",
        metric,
        "--json",
    )
    assert r.returncode == 0, r
    assert r.stderr == ""
    doc = r.json()
    assert paired(doc) == notes["truth"]
    assert [s["strip"] for s in doc["strips"]] == [f"{i:03d}.jpg" for i in range(1, N + 1)]
    assert [s["reference"] for s in doc["strips"]] == sorted(notes["truth"])  # reference-file order
    ox, pf = doc["folders"]
    assert (ox["images"], ox["matched"], ox["leftovers"], ox["unmatched_references"]) == (N, N, [], [])
    assert (pf["images"], pf["ignored"], pf["leftovers"]) == (N + 1, 1, ["pf_distractor.png"])
    assert all(m["rank"] == 1 for s in doc["strips"] for m in s["matches"])
    assert ox["not_nearest"] == pf["not_nearest"] == 0
    assert doc["metric"] == metric and doc["skipped"] == [] and doc["replaced"] is False
    assert sorted(os.listdir(out)) == [f"{i:03d}.jpg" for i in range(1, N + 1)] + ["matches.csv"]
    rows = read_csv(out / "matches.csv")
    assert list(rows[0]) == ["strip", "reference", "folder", "match", "distance", "rank"]
    assert len(rows) == 2 * N
    for row in rows:
        assert notes["truth"][row["reference"]][Path(row["folder"]).name] == row["match"]
    first = next(m for m in doc["strips"][0]["matches"] if m["folder"].endswith("Effect_pf"))
    assert float(rows[1]["distance"]) == first["distance"]
    # Every strip: three panels at the reference's 120 pixels; 160 + 160 (120x90 scaled) + 160.
    for i in range(1, N + 1):
        with Image.open(out / f"{i:03d}.jpg") as strip:
            assert strip.size == (480, 120)


def test_text_report_names_folders_leftovers_and_output(mlops, notes, tmp_path):
    out = tmp_path / "save"
    r = mlops("images", "match", *folders(notes, "yuantu", "Effect_ox1", "Effect_pf"), "-o", str(out))
    assert r.returncode == 0, r
    assert "Paired 12 reference image(s)" in r.stdout
    assert "Left over in" in r.stdout and "pf_distractor.png" in r.stdout
    assert f"Wrote 12 strip(s) and matches.csv to {out}" in r.stdout
    assert r.stderr == ""  # no progress bar off a terminal


def crafted_pair_images(root: Path) -> dict:
    """Two references A, B and their outputs, where the closest pair overall is wrong.

    A' is A brightened (the true pair, but 0.25 D away, D = mse(A, B)); B' is a blend
    0.55 A + 0.45 B, an output that drifted towards A: 0.2025 D from A and 0.3025 D from B.
    The greedy recipe takes A-B' first and is left with B-A'; the optimal pairing does not."""
    a = np.asarray(synth.picture(21, 64, 64), dtype=np.float64) * 0.6 + 40
    b = np.asarray(synth.picture(22, 64, 64), dtype=np.float64) * 0.6 + 40
    d = np.mean(((a - b) / 255) ** 2)
    a_out = a + 255 * np.sqrt(0.25 * d)
    b_out = 0.55 * a + 0.45 * b
    arrays = {"ref/a.png": a, "ref/b.png": b, "out/out_1.png": b_out, "out/out_2.png": a_out}
    pixels = {}
    for rel, arr in arrays.items():
        pixels[rel] = np.rint(arr).clip(0, 255).astype(np.uint8)
        synth.save(Image.fromarray(pixels[rel], "RGB"), root / rel)

    def mse(x, y):
        return np.mean((pixels[x] / 255.0 - pixels[y] / 255.0) ** 2)

    dist = {(r, o): mse(f"ref/{r}", f"out/{o}") for r in ("a.png", "b.png") for o in ("out_1.png", "out_2.png")}
    return dist


def test_optimal_assignment_recovers_the_truth_where_greedy_pairs_wrongly(mlops, tmp_path):
    dist = crafted_pair_images(tmp_path)
    # The premise, checked on the pixels themselves: the closest pair overall is the wrong one,
    # yet the right pairing has the smaller total.
    assert min(dist, key=dist.get) == ("a.png", "out_1.png")
    assert (
        dist["a.png", "out_2.png"] + dist["b.png", "out_1.png"]
        < dist["a.png", "out_1.png"] + dist["b.png", "out_2.png"]
    )
    r = mlops(
        "images",
        "match",
        str(tmp_path / "ref"),
        str(tmp_path / "out"),
        "-o",
        str(tmp_path / "strips"),
        "--size",
        "64",
        "--json",
    )
    assert r.returncode == 0, r
    doc = r.json()
    assert paired(doc) == {"a.png": {"out": "out_2.png"}, "b.png": {"out": "out_1.png"}}
    (folder,) = doc["folders"]
    assert folder["greedy_disagreements"] == 2
    assert folder["total_distance"]["optimal"] < folder["total_distance"]["greedy"]
    a_match = doc["strips"][0]["matches"][0]
    assert a_match["rank"] == 2  # A's partner is not its nearest image
    assert a_match["distance"] == pytest.approx(dist["a.png", "out_2.png"], rel=1e-4)
    assert folder["not_nearest"] == 1
    text = mlops(
        "images", "match", str(tmp_path / "ref"), str(tmp_path / "out"), "-o", str(tmp_path / "strips"), "--size", "64"
    )
    assert text.returncode == 0, text
    assert "Not the nearest image in" in text.stdout and "a.png -> out_2.png (rank 2," in text.stdout


def test_unequal_folder_sizes_report_unmatched_references_and_leftovers(mlops, notes, tmp_path):
    few = tmp_path / "few"
    many = tmp_path / "many"
    truth_few = {}
    for i in range(3):
        src = notes["root"] / "Effect_ox1" / notes["truth"][f"{i:03d}.jpg"]["Effect_ox1"]
        (few / src.name).parent.mkdir(exist_ok=True)
        (few / src.name).write_bytes(src.read_bytes())
        truth_few[f"{i:03d}.jpg"] = src.name
    for seed in range(2000, 2016):
        synth.save(synth.picture(seed), many / f"other_{seed}.jpg")
    out = tmp_path / "o"
    r = mlops("images", "match", *folders(notes, "yuantu"), str(few), str(many), "-o", str(out), "--json")
    assert r.returncode == 0, r
    doc = r.json()
    f_few, f_many = doc["folders"]
    assert f_few["matched"] == 3 and len(f_few["unmatched_references"]) == N - 3
    assert {s["reference"]: s["matches"][0]["file"] for s in doc["strips"] if s["matches"][0]["file"]} == truth_few
    assert f_many["matched"] == N and len(f_many["leftovers"]) == 16 - N
    # A reference with no match in `few` gets a blank panel as wide as its own (160 px).
    strip = Image.open(out / "012.jpg").convert("RGB")
    assert strip.size == (480, 120)
    assert all(abs(c - 224) <= 3 for c in strip.getpixel((240, 60)))
    rows = read_csv(out / "matches.csv")
    blank = [row for row in rows if row["reference"] == "011.jpg" and row["folder"] == str(few)]
    assert blank == [
        {"strip": "012.jpg", "reference": "011.jpg", "folder": str(few), "match": "", "distance": "", "rank": ""}
    ]


def test_max_distance_leaves_poor_matches_unmatched(mlops, notes, tmp_path):
    # Only the first six originals have an output; the rest of the folder is other pictures.
    partial = tmp_path / "partial"
    for i in range(6):
        src = notes["root"] / "Effect_ox1" / notes["truth"][f"{i:03d}.jpg"]["Effect_ox1"]
        synth.save(Image.open(src), partial / src.name)
    for seed in range(3000, 3006):
        synth.save(synth.picture(seed), partial / f"zz_{seed}.jpg")
    forced = mlops("images", "match", *folders(notes, "yuantu"), str(partial), "-o", str(tmp_path / "a"), "--json")
    assert forced.returncode == 0, forced
    forced_doc = forced.json()
    assert forced_doc["folders"][0]["matched"] == N  # without a limit, strangers are paired
    true_d = [s["matches"][0]["distance"] for s in forced_doc["strips"][:6]]
    wrong_d = [s["matches"][0]["distance"] for s in forced_doc["strips"][6:]]
    assert max(true_d) < min(wrong_d)
    limit = (max(true_d) + min(wrong_d)) / 2
    r = mlops(
        "images",
        "match",
        *folders(notes, "yuantu"),
        str(partial),
        "-o",
        str(tmp_path / "b"),
        "--json",
        "--max-distance",
        f"{limit:.6f}",
    )
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["max_distance"] == pytest.approx(limit, rel=1e-5)
    (folder,) = doc["folders"]
    assert folder["matched"] == 6
    assert folder["unmatched_references"] == [f"{i:03d}.jpg" for i in range(6, N)]
    assert sorted(folder["leftovers"]) == [f"zz_{s}.jpg" for s in range(3000, 3006)]
    assert {s["reference"]: s["matches"][0]["file"] for s in doc["strips"][:6]} == {
        f"{i:03d}.jpg": notes["truth"][f"{i:03d}.jpg"]["Effect_ox1"] for i in range(6)
    }


def test_unreadable_files_are_listed_and_skipped_with_exit_1(mlops, notes, tmp_path):
    ref = tmp_path / "ref"
    other = tmp_path / "other"
    for i in range(4):
        (ref).mkdir(exist_ok=True)
        (ref / f"{i:03d}.jpg").write_bytes((notes["root"] / "yuantu" / f"{i:03d}.jpg").read_bytes())
        synth.save(synth.blur(synth.picture(i)), other / f"o{i}.png")
    whole = (ref / "003.jpg").read_bytes()
    (ref / "003.jpg").write_bytes(whole[: len(whole) // 3])  # truncated
    (other / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    out = tmp_path / "out"
    r = mlops("images", "match", str(ref), str(other), "-o", str(out), "--json")
    assert r.returncode == 1, r
    doc = r.json()
    skipped = {(Path(s["folder"]).name, s["file"]): s["reason"] for s in doc["skipped"]}
    assert set(skipped) == {("ref", "003.jpg"), ("other", "garbage.png")}
    assert "truncated" in skipped["ref", "003.jpg"]
    assert paired(doc) == {f"{i:03d}.jpg": {"other": f"o{i}.png"} for i in range(3)}
    assert doc["folders"][0]["leftovers"] == ["o3.png"]
    assert sorted(os.listdir(out)) == ["001.jpg", "002.jpg", "003.jpg", "matches.csv"]
    text = mlops("images", "match", str(ref), str(other), "-o", str(out))
    assert text.returncode == 1
    assert "Skipped 2 unreadable file(s):" in text.stdout
    assert f"{ref}/003.jpg: truncated" in text.stdout


def test_exif_rotated_reference_is_matched_and_shown_upright(mlops, tmp_path):
    upright = [synth.picture(40 + i, 120, 160) for i in range(3)]  # portrait pictures
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees anticlockwise; viewers turn it back
    for i, pic in enumerate(upright):
        synth.save(
            pic.transpose(Image.Transpose.ROTATE_90), tmp_path / "ref" / f"r{i}.jpg", quality=95, exif=exif.tobytes()
        )
        synth.save(synth.blur(pic, 1.0), tmp_path / "out" / f"x{2 - i}.jpg", quality=90)
    r = mlops("images", "match", str(tmp_path / "ref"), str(tmp_path / "out"), "-o", str(tmp_path / "s"), "--json")
    assert r.returncode == 0, r
    assert paired(r.json()) == {f"r{i}.jpg": {"out": f"x{2 - i}.jpg"} for i in range(3)}
    strip = Image.open(tmp_path / "s" / "001.jpg").convert("RGB")
    assert strip.size == (240, 160)  # two upright 120x160 panels
    left = np.asarray(strip.crop((0, 0, 120, 160)), dtype=float)
    want = np.asarray(upright[0], dtype=float)
    assert np.mean(np.abs(left - want)) < 12  # the reference panel is the upright picture


def test_stitched_layout_is_exact(mlops, tmp_path):
    colours = {"ref": (200, 30, 30), "wide": (30, 200, 30), "tall": (30, 30, 200)}
    synth.save(Image.new("RGB", (300, 200), colours["ref"]), tmp_path / "ref" / "a.png")
    synth.save(Image.new("RGB", (400, 100), colours["wide"]), tmp_path / "wide" / "w.png")
    synth.save(Image.new("RGB", (50, 150), colours["tall"]), tmp_path / "tall" / "t.png")
    out = tmp_path / "s"
    r = mlops(
        "images",
        "match",
        str(tmp_path / "ref"),
        str(tmp_path / "wide"),
        str(tmp_path / "tall"),
        "-o",
        str(out),
        "--height",
        "60",
        "--labels",
        "--format",
        "png",
    )
    assert r.returncode == 0, r
    assert sorted(os.listdir(out)) == ["001.png", "matches.csv"]
    strip = Image.open(out / "001.png").convert("RGB")
    # height 60: 300x200 -> 90, 400x100 -> 240, 50x150 -> 20; label band 16 (min) under them
    assert strip.size == (90 + 240 + 20, 60 + 16)
    for (x0, x1), colour in zip([(0, 90), (90, 330), (330, 350)], colours.values()):
        panel = np.asarray(strip.crop((x0, 0, x1, 60)), dtype=int)
        assert np.abs(panel - colour).max() <= 2, (x0, x1)
    band = np.asarray(strip.crop((0, 60, 350, 76)).convert("L"))
    assert band.min() < 100 and np.median(band) == 255  # dark text on white
    without = mlops("images", "match", str(tmp_path / "ref"), str(tmp_path / "wide"), "-o", str(tmp_path / "n"))
    assert without.returncode == 0, without
    assert Image.open(tmp_path / "n" / "001.jpg").size == (300 + 800, 200)  # default: the reference's height


def test_existing_output_that_is_not_ours_is_never_replaced(mlops, notes, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.pdf").write_bytes(b"%PDF")
    before = sorted(os.listdir(tmp_path))
    r = mlops("images", "match", *folders(notes, "yuantu", "Effect_ox1"), "-o", str(out))
    assert r.returncode == 2, r
    assert r.stderr.startswith(f"error: refusing to replace {out}: it is not an output of `mlops images match`")
    assert os.listdir(out) == ["thesis.pdf"] and sorted(os.listdir(tmp_path)) == before
    for bad in (notes["root"] / "yuantu", notes["root"]):
        r = mlops("images", "match", *folders(notes, "yuantu", "Effect_ox1"), "-o", str(bad))
        assert r.returncode == 2 and "would replace the input folder" in r.stderr, r
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    r = mlops("images", "match", *folders(notes, "yuantu", "Effect_ox1"), "-o", str(tmp_path / "link"))
    assert r.returncode == 2 and "symbolic link" in r.stderr, r
    (tmp_path / "file").write_text("x")
    r = mlops("images", "match", *folders(notes, "yuantu", "Effect_ox1"), "-o", str(tmp_path / "file"))
    assert r.returncode == 2 and "not a folder" in r.stderr, r


def test_a_previous_output_is_replaced_whole(mlops, notes, tmp_path):
    out = tmp_path / "save"
    assert mlops("images", "match", *folders(notes, "yuantu", "Effect_ox1"), "-o", str(out)).returncode == 0
    assert len(os.listdir(out)) == N + 1
    few = tmp_path / "few"
    for i in range(2):
        (few).mkdir(exist_ok=True)
        (few / f"{i}.jpg").write_bytes((notes["root"] / "yuantu" / f"{i:03d}.jpg").read_bytes())
    r = mlops("images", "match", str(few), *folders(notes, "Effect_ox1"), "-o", str(out), "--json")
    assert r.returncode == 0, r
    assert r.json()["replaced"] is True
    assert sorted(os.listdir(out)) == ["001.jpg", "002.jpg", "matches.csv"]  # no stale strips
    assert sorted(os.listdir(tmp_path)) == ["few", "save"]  # no staging or old folder left


def test_hostile_file_names_are_printed_inert_and_written_exactly(mlops, notes, tmp_path):
    evil = "evil\x1b[2J\x1b]0;pwned\x07\nsecond line.jpg"
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / evil).write_bytes((notes["root"] / "yuantu" / "000.jpg").read_bytes())
    synth.save(synth.picture(0), tmp_path / "out" / "plain.png")
    synth.save(synth.picture(5), tmp_path / "out" / "left\x1b[2Jover\r.png")  # a leftover: printed
    (tmp_path / "out" / "bad\x1b[31m.png").write_bytes(b"junk")  # unreadable: printed
    out = tmp_path / "s"
    r = mlops("images", "match", str(ref), str(tmp_path / "out"), "-o", str(out), "--labels")
    assert r.returncode == 1, r
    assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stdout and "\r" not in r.stdout
    assert "left\\x1b[2Jover\\x0d.png" in r.stdout and "bad\\x1b[31m.png" in r.stdout
    assert read_csv(out / "matches.csv")[0]["reference"] == evil
    doc = mlops("images", "match", str(ref), str(tmp_path / "out"), "-o", str(out), "--json").json()
    assert doc["strips"][0]["reference"] == evil


def test_not_utf8_file_names_round_trip_through_csv_and_json(mlops, notes, tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes, not UTF-8
    (ref / name).write_bytes((notes["root"] / "yuantu" / "001.jpg").read_bytes())
    synth.save(synth.picture(1), tmp_path / "out" / "o.png")
    out = tmp_path / "s"
    r = mlops("images", "match", str(ref), str(tmp_path / "out"), "-o", str(out), "--json")
    assert r.returncode == 0, r
    assert os.fsencode(r.json()["strips"][0]["reference"]) == b"caf\xe9.jpg"
    assert b"\n001.jpg,caf\xe9.jpg," in (out / "matches.csv").read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (["{root}/nope", "{root}/Effect_ox1"], "reference folder {root}/nope does not exist"),
        (["{root}/yuantu/000.jpg", "{root}/Effect_ox1"], "is not a folder"),
        (["{empty}", "{root}/Effect_ox1"], "no image files in reference folder"),
        (["{root}/yuantu", "{empty}"], "no image files in folder"),
        (["{root}/yuantu", "{root}/Effect_ox1", "--metric", "psnr"], "Invalid value for '--metric'"),
        (["{root}/yuantu", "{root}/Effect_ox1", "--size", "4"], "Invalid value for '--size'"),
        (["{root}/yuantu", "{root}/Effect_ox1", "--max-distance", "-1"], "Invalid value for '--max-distance'"),
        (["{root}/yuantu", "{root}/Effect_ox1", "--max-distance", "nan"], "--max-distance"),
        (["{root}/yuantu"], "Missing argument"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(mlops, notes, tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("no images here")
    fill = {"root": notes["root"], "empty": empty}
    r = mlops("images", "match", *[a.format(**fill) for a in args], "-o", str(tmp_path / "out"))
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: ") and message.format(**fill) in r.stderr.splitlines()[0], r
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_help_and_the_root_help_import_no_image_library():
    code = (
        "import sys; from mlops_cli.cli import main\n"
        "for argv in (['--help'], ['images', '--help'], ['images', 'match', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit as e:\n        assert e.code == 0, argv\n"
        "print('HEAVY', sorted(m for m in ('PIL', 'numpy', 'scipy', 'imagehash') if m in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "blocked, metric, named",
    [("PIL", "mse", "Pillow"), ("scipy", "ssim", "scipy"), ("imagehash", "phash", "imagehash")],
)
def test_without_the_extra_it_says_how_to_install_it_and_exits_3(notes, tmp_path, blocked, metric, named):
    # sys.modules[name] = None makes `import name` fail exactly as if it were not installed.
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from mlops_cli.cli import main\n"
        f"main(['images', 'match', sys.argv[1], sys.argv[2], '-o', sys.argv[3], '--metric', {metric!r}])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *folders(notes, "yuantu", "Effect_ox1"), str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3, proc
    assert proc.stderr == (
        f"error: `mlops images match` needs {named}, not installed here: pip install 'mlops-cli[images]'\n"
    )
    assert proc.stdout == "" and not (tmp_path / "o").exists()


def test_interrupted_run_leaves_nothing_behind(notes, tmp_path):
    # Huge panels make stitching slow enough to be interrupted halfway through.
    parent = tmp_path / "parent"
    parent.mkdir()
    out = parent / "save"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_cli",
            "images",
            "match",
            *folders(notes, "yuantu", "Effect_ox1", "Effect_pf"),
            "-o",
            str(out),
            "--height",
            "6000",
            "--labels",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        staging = [p for p in parent.iterdir() if p.name.startswith(".save.")]
        if staging and any(staging[0].glob("*.jpg")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert list(parent.iterdir()) == []  # no OUT, no staging folder


def test_progress_is_shown_on_a_terminal_only(notes, tmp_path):
    import pty

    argv = [
        sys.executable,
        "-m",
        "mlops_cli",
        "images",
        "match",
        *folders(notes, "yuantu", "Effect_ox1"),
        "-o",
        str(tmp_path / "o"),
    ]
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    env.update(TERM="xterm", COLUMNS="100")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=120)
    os.close(leader)
    assert proc.returncode == 0
    assert b"decoding" in seen and b"stitching" in seen
    assert b"decoding" not in proc.stdout.read()


def test_csv_and_json_agree(mlops, notes, tmp_path):
    out = tmp_path / "save"
    doc = mlops(
        "images", "match", *folders(notes, "yuantu", "Effect_ox1", "Effect_pf"), "-o", str(out), "--json"
    ).json()
    from_json = [
        (s["strip"], s["reference"], m["folder"], m["file"] or "", m["distance"], m["rank"])
        for s in doc["strips"]
        for m in s["matches"]
    ]
    from_csv = [
        (r["strip"], r["reference"], r["folder"], r["match"], float(r["distance"]), int(r["rank"]))
        for r in read_csv(out / "matches.csv")
    ]
    assert from_csv == from_json
    json.dumps(doc)  # one plain JSON document
    assert set(doc) >= {
        "out",
        "replaced",
        "metric",
        "size",
        "max_distance",
        "height",
        "labels",
        "format",
        "reference",
        "folders",
        "strips",
        "skipped",
        "timings_s",
    }


def test_help_names_the_extra_and_the_default_height(mlops):
    r = mlops("images", "match", "--help")
    assert r.returncode == 0, r
    assert "pip install 'mlops-cli[images]'" in r.stdout  # not eaten as rich markup
    assert "[default: each reference's own height]" in r.stdout
    assert "Example" in r.stdout


def test_a_folder_whose_images_are_in_subfolders_is_refused_with_where_they_are(mlops, notes, tmp_path):
    # GFPGAN writes results/{restored_imgs,cmp,...}/; given results/ itself, say which subfolders hold images.
    results = tmp_path / "results"
    for sub, count in (("restored_imgs", 3), ("cmp", 2)):
        for i in range(count):
            synth.save(synth.picture(i), results / sub / f"{i:02d}.png")
    (results / "notes").mkdir()
    r = mlops("images", "match", str(notes["root"] / "yuantu"), str(results), "-o", str(tmp_path / "out"))
    assert r.returncode == 2, r
    assert "no image files in folder" in r.stderr
    hint = next(line for line in r.stderr.splitlines() if line.startswith("hint:"))
    assert f"{results / 'restored_imgs'} (3)" in hint and f"{results / 'cmp'} (2)" in hint
    assert "notes" not in hint


def test_gif_outputs_palette_and_animated_are_matched(mlops, notes, tmp_path):
    # A folder of outputs saved as GIF (one animated: its first frame is the output) pairs like any other.
    outs = tmp_path / "gifs"
    outs.mkdir()
    refs = sorted(notes["truth"])[:4]
    for k, ref in enumerate(refs):
        pic = Image.open(notes["root"] / "yuantu" / ref).convert("RGB")
        frames = [pic.convert("P", palette=Image.Palette.ADAPTIVE)]
        if k == 0:
            frames.append(synth.picture(999).resize(pic.size).convert("P", palette=Image.Palette.ADAPTIVE))
        frames[0].save(outs / f"g{3 - k}.gif", save_all=True, append_images=frames[1:], duration=100)
    r = mlops("images", "match", str(notes["root"] / "yuantu"), str(outs), "-o", str(tmp_path / "out"), "--json")
    assert r.returncode == 0, r
    got = {s["reference"]: s["matches"][0]["file"] for s in r.json()["strips"]}
    assert {ref: got[ref] for ref in refs} == {ref: f"g{3 - k}.gif" for k, ref in enumerate(refs)}


def test_references_whose_output_is_missing_are_flagged_far_from_the_rest(mlops, notes, tmp_path):
    # Effect_ox1 less two outputs, plus two strangers: the two references are paired with what is
    # left, far from every true pair, and the report says so (JSON far_pairs and one text line).
    outs = tmp_path / "outs"
    outs.mkdir()
    missing = ("003.jpg", "007.jpg")
    for ref, by_folder in notes["truth"].items():
        if ref not in missing:
            src = notes["root"] / "Effect_ox1" / by_folder["Effect_ox1"]
            (outs / src.name).write_bytes(src.read_bytes())
    for seed in (3001, 3002):
        synth.save(synth.picture(seed), outs / f"stranger_{seed}.jpg")
    r = mlops("images", "match", *folders(notes, "yuantu"), str(outs), "-o", str(tmp_path / "o"), "--json")
    assert r.returncode == 0, r
    assert sorted(r.json()["folders"][0]["far_pairs"]) == sorted(missing)
    t = mlops("images", "match", *folders(notes, "yuantu"), str(outs), "-o", str(tmp_path / "t"))
    line = next(x for x in t.stdout.splitlines() if x.startswith("Far from the other pairs"))
    assert all(m in line for m in missing)
    clean = mlops("images", "match", *folders(notes, "yuantu", "Effect_ox1"), "-o", str(tmp_path / "c"), "--json")
    assert clean.json()["folders"][0]["far_pairs"] == []
