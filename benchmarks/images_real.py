#!/usr/bin/env python3
"""`mlops images match` on real photographs and real-world folders: right pairs, wrong pairs,
leftovers, exit codes, internal errors.

The photographs are the real photos that ship inside the scikit-image wheel (``skimage/data``,
installed by the ``test`` extra; origin and licence of each in MANIFEST below, taken from the
docstrings of ``skimage/data/_fetchers.py``). Nothing binary is committed: every folder is built
at run time under --workdir. References are the 20 photos (longest side at most 512 px, JPEG q92)
plus 12 tiles cut from the four largest ones (so 32 references; the tiles are real pixels, but
not distinct photographs).

Each CASE is one class of real-world condition; its "outputs" folder is made from the references
by a realistic transform and named the way the tool that makes such outputs names its files
(Real-ESRGAN ``name_out.png``, ComfyUI ``ComfyUI_00001_.png``, A1111 ``00001-12345.png``, GFPGAN
``restored_imgs/``), so the truth is known. What is filled in: the transforms are Pillow's
(LANCZOS upscaling + UnsharpMask stands in for an upscaler, etc.), not the models' own output.

Each run is the real command line in a child process (``python -m mlops_cli images match REF
OUT -o DIR --json``). Score per case: references paired right, paired wrong, references correctly
left unmatched / candidates correctly reported left over, the exit code against the expected
one, and no ``internal error``.

    python benchmarks/images_real.py [--workdir /tmp/mlops-images-real] [--only CASE] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

REPO = Path(__file__).resolve().parent.parent

# file in skimage/data -> (what it is, licence as the skimage docstring states it)
MANIFEST = {
    "astronaut.png": ("Eileen Collins, NASA portrait", "public domain (NASA)"),
    "camera.png": ("cameraman on a campus", "CC0 (Lav Varshney)"),
    "brick.png": ("brick wall texture photo, CC0Textures Bricks25", "CC0"),
    "grass.png": ("grass texture photo, CC0Textures", "CC0"),
    "gravel.png": ("gravel texture photo, CC0Textures Gravel04", "CC0"),
    "text.png": ("photographed text on a page", "public domain"),
    "cell.png": ("microscope photo of a cell", "CC0"),
    "coins.png": ("Greek coins from Pompeii", "no known copyright restrictions"),
    "microaneurysms.png": ("retina fundus detail", "CC0 (Andreas Maier)"),
    "moon.png": ("surface of the moon", "scikit-image data, no licence stated"),
    "page.png": ("scanned page of a book", "scikit-image data, no licence stated"),
    "clock_motion.png": ("clock with motion blur", "public domain (Stefan van der Walt)"),
    "ihc.png": ("immunohistochemistry stain", "no known copyright restrictions"),
    "chelsea.png": ("Chelsea the cat", "CC0 (Stefan van der Walt)"),
    "coffee.png": ("cup of coffee", "CC0 (Rachel Michetti)"),
    "hubble_deep_field.jpg": ("Hubble eXtreme Deep Field", "public domain (NASA)"),
    "retina.jpg": ("human retina fundus photo", "CC0 1.0"),
    "rocket.jpg": ("SpaceX Falcon 9 launch", "public domain (SpaceX)"),
    "motorcycle_left.png": ("Middlebury stereo, left view", "scikit-image data, no licence stated"),
    "motorcycle_right.png": (
        "Middlebury stereo, right view (near-duplicate of left)",
        "scikit-image data, no licence stated",
    ),
}
TILED = ("hubble_deep_field.jpg", "retina.jpg", "astronaut.png", "coffee.png")  # 3 tiles each


def skimage_data() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def load_photos() -> list[tuple[str, Image.Image]]:
    base = skimage_data()
    photos = []
    for name in MANIFEST:
        with Image.open(base / name) as im:
            im.load()
            pic = im.convert("RGB")
        full = pic
        pic = pic.copy()
        pic.thumbnail((512, 512), Image.Resampling.LANCZOS)
        photos.append((Path(name).stem, pic))
        if name in TILED:
            w, h = full.size
            for k, (x0, y0) in enumerate(((0, 0), (w // 2, 0), (0, h // 2))):
                tile = full.crop((x0, y0, x0 + w // 2, y0 + h // 2))
                tile.thumbnail((384, 384), Image.Resampling.LANCZOS)
                photos.append((f"{Path(name).stem}_tile{k}", tile))
    return photos


# --- transforms (what an image model's output looks like) ----------------------------------


def upscale_sharpen(im: Image.Image, factor: int) -> Image.Image:
    big = im.resize((im.width * factor, im.height * factor), Image.Resampling.LANCZOS)
    return big.filter(ImageFilter.UnsharpMask(radius=2, percent=160, threshold=2))


def jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def denoise(im: Image.Image) -> Image.Image:
    return im.filter(ImageFilter.MedianFilter(5)).filter(ImageFilter.GaussianBlur(2))


def grade(im: Image.Image) -> Image.Image:
    r, g, b = im.split()
    warm = Image.merge("RGB", (r.point(lambda v: min(255, int(v * 1.15 + 12))), g, b.point(lambda v: int(v * 0.8))))
    return ImageEnhance.Contrast(ImageEnhance.Color(warm).enhance(1.5)).enhance(1.3)


def gray(im: Image.Image) -> Image.Image:
    return ImageOps.grayscale(im)


def crop_pad_169(im: Image.Image) -> Image.Image:
    w, h = im.size
    cut = im.crop((w // 16, h // 16, w - w // 16, h - h // 16))
    target_w = max(cut.width, int(cut.height * 16 / 9))
    canvas = Image.new("RGB", (target_w, cut.height), (0, 0, 0))
    canvas.paste(cut, ((target_w - cut.width) // 2, 0))
    return canvas


def flip(im: Image.Image) -> Image.Image:
    return ImageOps.mirror(im)


# --- cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    what: str
    expect_exit: int
    truth: dict[str, str | None] = field(default_factory=dict)  # reference file -> output file or None
    leftovers: set[str] = field(default_factory=set)  # output files no reference should take
    args: list[str] = field(default_factory=list)
    folder: str = "outs"  # the other folder, relative to the case directory
    expect_error: str | None = None  # for a run that should refuse: a substring of the error


def _save(im: Image.Image, path: Path, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = kw.pop("format", None)
    if fmt is None and path.suffix.lower() in (".jpg", ".jpeg"):
        im = im.convert("RGB")
    im.save(path, fmt, **kw)


def write_refs(root: Path, photos, *, names=None) -> list[str]:
    refs = []
    for i, (stem, pic) in enumerate(photos):
        name = names[i] if names else f"{stem}.jpg"
        _save(pic, root / "refs" / name, quality=92)
        refs.append(name)
    return refs


def simple_case(
    root: Path,
    photos,
    name: str,
    what: str,
    fn: Callable,
    namer: Callable[[int, str], str],
    ext_kw: dict | None = None,
    args: list[str] | None = None,
) -> Case:
    case = Case(name, what, 0, args=args or [])
    refs = write_refs(root, photos)
    order = list(range(len(photos)))
    random.Random(name).shuffle(order)
    for slot, i in enumerate(order):
        out = namer(slot, photos[i][0])
        _save(fn(photos[i][1]), root / "outs" / out, **(ext_kw or {}))
        case.truth[refs[i]] = out
    return case


def build_cases(workdir: Path) -> list[tuple[Path, Case]]:
    photos = load_photos()
    built = []

    def make(name: str, builder: Callable[[Path], Case]) -> None:
        root = workdir / name
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        built.append((root, builder(root)))

    make(
        "upscale4x_realesrgan",
        lambda r: simple_case(
            r,
            photos,
            "upscale4x_realesrgan",
            "4x LANCZOS + unsharp mask, Real-ESRGAN names name_out.png",
            lambda im: upscale_sharpen(im, 4),
            lambda k, stem: f"{stem}_out.png",
        ),
    )
    make(
        "upscale2x_comfyui",
        lambda r: simple_case(
            r,
            photos,
            "upscale2x_comfyui",
            "2x + sharpen, JPEG q75, ComfyUI names in shuffled order",
            lambda im: jpeg(upscale_sharpen(im, 2), 75),
            lambda k, stem: f"ComfyUI_{k + 1:05d}_.png",
        ),
    )
    make(
        "jpeg_q10",
        lambda r: simple_case(
            r,
            photos,
            "jpeg_q10",
            "re-encoded at JPEG quality 10",
            lambda im: im,
            lambda k, stem: f"{k + 1:05d}-{1000 + 7 * k}.jpg",
            {"quality": 10},
        ),
    )
    make(
        "denoise_blur",
        lambda r: simple_case(
            r,
            photos,
            "denoise_blur",
            "median 5 + Gaussian blur 2 (a denoiser's smoothing)",
            denoise,
            lambda k, stem: f"{k + 1:05d}-{4242 + k}.png",
        ),
    )
    make(
        "colour_grade",
        lambda r: simple_case(
            r,
            photos,
            "colour_grade",
            "warm grade, saturation x1.5, contrast x1.3",
            grade,
            lambda k, stem: f"graded_{k:03d}.jpg",
        ),
    )
    make(
        "grayscale",
        lambda r: simple_case(
            r,
            photos,
            "grayscale",
            "outputs in grayscale (a colouriser's input, or a B/W filter)",
            gray,
            lambda k, stem: f"bw_{k:03d}.png",
        ),
    )
    make(
        "crop_pad_16x9",
        lambda r: simple_case(
            r,
            photos,
            "crop_pad_16x9",
            "6 % cropped each side, letterboxed to 16:9 (outpainting frame)",
            crop_pad_169,
            lambda k, stem: f"frame_{k:03d}.png",
        ),
    )
    make("exif_rotated", lambda r: _exif_case(r, photos))
    make("formats", lambda r: _formats_case(r, photos))
    make("flips_as_distractors", lambda r: _flip_case(r, photos))
    make("hostile_folder", lambda r: _hostile_case(r, photos))
    make("missing_and_extra", lambda r: _unequal_case(r, photos))
    make("burst_near_duplicates", lambda r: _burst_case(r, photos))
    make("gfpgan_results_root", lambda r: _gfpgan_case(r, photos))
    make("odd_names", lambda r: _names_case(r, photos))
    return built


def _exif_case(root: Path, photos) -> Case:
    """A phone JPEG: pixels stored turned 90 degrees, EXIF Orientation 6 says turn them back."""
    case = simple_case(root, photos, "exif_rotated", "", lambda im: im, lambda k, stem: f"IMG_{4000 + k}.jpg")
    case.what = "outputs are phone JPEGs stored rotated with EXIF Orientation=6 (upright when shown)"
    for out in case.truth.values():
        path = root / "outs" / out
        with Image.open(path) as im:
            upright = im.convert("RGB")
        stored = upright.transpose(Image.Transpose.ROTATE_90)  # Orientation 6: the viewer turns it 90 CW back
        exif = Image.Exif()
        exif[0x0112] = 6
        stored.save(path, "JPEG", quality=90, exif=exif.tobytes())
    return case


def _formats_case(root: Path, photos) -> Case:
    case = Case(
        "formats",
        "outputs in every format a tool writes: RGBA PNG, 16-bit PNG, CMYK JPEG, "
        "palette GIF, WebP, animated GIF (frame 1 is the output), TIFF",
        0,
    )
    refs = write_refs(root, photos)
    kinds = ("rgba", "png16", "cmyk", "gif", "webp", "anigif", "tiff")
    for i, (stem, pic) in enumerate(photos):
        kind = kinds[i % len(kinds)]
        base = root / "outs" / f"out_{i:03d}"
        if kind == "rgba":
            rgba = pic.convert("RGBA")
            alpha = Image.new("L", pic.size, 255)
            alpha.paste(0, (0, 0, pic.width, pic.height // 10))  # a transparent band on top
            rgba.putalpha(alpha)
            out = base.with_suffix(".png")
            _save(rgba, out)
        elif kind == "png16":
            import numpy as np

            wide = np.asarray(pic.convert("L"), dtype=np.uint16) * 257
            out = base.with_suffix(".png")
            _save(Image.fromarray(wide), out)
        elif kind == "cmyk":
            out = base.with_suffix(".jpg")
            _save(pic.convert("CMYK"), out, quality=90)
        elif kind == "gif":
            out = base.with_suffix(".gif")
            _save(pic.convert("P", palette=Image.Palette.ADAPTIVE, colors=256), out)
        elif kind == "webp":
            out = base.with_suffix(".webp")
            _save(pic, out, quality=80)
        elif kind == "anigif":
            out = base.with_suffix(".gif")
            frames = [pic.convert("P", palette=Image.Palette.ADAPTIVE)] + [
                photos[(i + d) % len(photos)][1].resize(pic.size).convert("P", palette=Image.Palette.ADAPTIVE)
                for d in (5, 9)
            ]
            out.parent.mkdir(parents=True, exist_ok=True)
            frames[0].save(out, save_all=True, append_images=frames[1:], duration=100, loop=0)
        else:
            out = base.with_suffix(".tif")
            _save(pic, out, compression="tiff_lzw")
        case.truth[refs[i]] = out.name
    return case


def _flip_case(root: Path, photos) -> Case:
    case = simple_case(
        root, photos, "flips_as_distractors", "", lambda im: jpeg(im, 60), lambda k, stem: f"res_{k:03d}.jpg"
    )
    case.what = "true outputs (JPEG q60) plus a mirrored copy of 8 of them: a flip is another image"
    for ref in list(case.truth)[:8]:
        with Image.open(root / "outs" / case.truth[ref]) as im:
            mirrored = flip(im.convert("RGB"))
        name = "flip_" + case.truth[ref]
        _save(mirrored, root / "outs" / name, quality=60)
        case.leftovers.add(name)
    return case


def _hostile_case(root: Path, photos) -> Case:
    case = simple_case(
        root, photos, "hostile_folder", "", lambda im: jpeg(im, 70), lambda k, stem: f"result_{k:03d}.jpg"
    )
    case.what = (
        "zero-byte and truncated images, an over-limit (>179 MP) PNG, .DS_Store, ._AppleDouble, "
        "a .txt, a subfolder, among the outputs"
    )
    case.expect_exit = 1  # unreadable files are listed and skipped
    outs = root / "outs"
    (outs / "empty.png").write_bytes(b"")
    good = (outs / case.truth[next(iter(case.truth))]).read_bytes()
    (outs / "partial.jpg").write_bytes(good[: len(good) // 3])
    (outs / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 100)
    (outs / ("._" + case.truth[next(iter(case.truth))])).write_bytes(b"\0\x05\x16\x07\0\2\0\0Mac OS X" + b"\0" * 50)
    (outs / "prompt.txt").write_text("a photo of a cat, 8k\n")
    (outs / "thumbs").mkdir()
    _save(photos[0][1], outs / "thumbs" / "small.jpg", quality=50)
    Image.new("L", (15000, 12000), 128).save(outs / "huge.png", compress_level=1)
    return case


def _unequal_case(root: Path, photos) -> Case:
    case = simple_case(
        root,
        photos,
        "missing_and_extra",
        "",
        lambda im: denoise(jpeg(im, 50)),
        lambda k, stem: f"{k + 1:05d}-{99 + k}.png",
    )
    case.what = "5 outputs missing, 3 outputs of other photos (strangers) present"
    for ref in list(case.truth)[-5:]:
        (root / "outs" / case.truth[ref]).unlink()
        case.truth[ref] = None
    for k in range(3):
        stranger = Image.new("RGB", (300, 200), (40 * k, 90, 200 - 50 * k)).filter(ImageFilter.GaussianBlur(3))
        noise = Image.effect_noise((300, 200), 40 + 10 * k).convert("RGB")
        name = f"stranger_{k}.png"
        _save(Image.blend(stranger, noise, 0.4), root / "outs" / name)
        case.leftovers.add(name)
    return case


def _burst_case(root: Path, photos) -> Case:
    """A burst: 8 frames a few pixels apart from each of three photos, outputs blurred + JPEG."""
    case = Case(
        "burst_near_duplicates",
        "3 bursts of 8 frames 6 px apart (plus the motorcycle stereo pair), outputs blurred + JPEG q40",
        0,
    )
    order = []
    for stem, pic in photos:
        if stem not in ("chelsea", "coffee", "camera"):
            continue
        for f in range(8):
            dx = 6 * f
            frame = pic.crop((dx, dx // 2, dx + pic.width - 48, dx // 2 + pic.height - 24))
            ref = f"{stem}_burst{f}.jpg"
            _save(frame, root / "refs" / ref, quality=95)
            order.append((ref, frame))
    for stem, pic in photos:
        if stem.startswith("motorcycle"):
            _save(pic, root / "refs" / f"{stem}.jpg", quality=95)
            order.append((f"{stem}.jpg", pic))
    slots = list(range(len(order)))
    random.Random(7).shuffle(slots)
    for (ref, frame), k in zip(order, slots):
        out = f"ComfyUI_{k + 1:05d}_.png"
        _save(jpeg(frame.filter(ImageFilter.GaussianBlur(1.5)), 40), root / "outs" / out)
        case.truth[ref] = out
    return case


def _gfpgan_case(root: Path, photos) -> Case:
    """GFPGAN writes results/{restored_imgs,cmp,cropped_faces,restored_faces}/: nothing at the top.
    Given results/ itself, the run must refuse (exit 2) and say where the images are."""
    case = Case(
        "gfpgan_results_root",
        "results/ of GFPGAN given instead of results/restored_imgs",
        2,
        folder="results",
        expect_error="restored_imgs",
    )
    write_refs(root, photos[:6])
    for stem, pic in photos[:6]:
        _save(denoise(pic), root / "results" / "restored_imgs" / f"{stem}.png")
        _save(pic, root / "results" / "cmp" / f"{stem}.png")
    return case


def _names_case(root: Path, photos) -> Case:
    """Names with spaces, non-ASCII and bytes that are not UTF-8, on both sides."""
    names = []
    for i, (stem, _) in enumerate(photos):
        if i % 3 == 0:
            names.append(f"photo {i} (copy).jpg")
        elif i % 3 == 1:
            names.append(os.fsdecode(b"bild_\xe4\xf6_" + str(i).encode() + b".jpg"))  # Latin-1 bytes
        else:
            names.append(f"фото_{i}.jpg")
    case = Case("odd_names", "spaces, Cyrillic and non-UTF-8 (Latin-1) bytes in reference and output names", 0)
    refs = write_refs(root, photos, names=names)
    order = list(range(len(photos)))
    random.Random(3).shuffle(order)
    for slot, i in enumerate(order):
        out = os.fsdecode(b"out \xff" + str(slot).encode() + b".png") if slot % 2 else f"out {slot}.png"
        _save(jpeg(photos[i][1], 50), root / "outs" / out)
        case.truth[refs[i]] = out
    return case


# --- scoring -------------------------------------------------------------------------------


def _norm(name: str | None) -> str | None:
    """A name as JSON can carry it: bytes that are not UTF-8 become U+FFFD on either side."""
    if name is None:
        return None
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def run_case(root: Path, case: Case) -> dict:
    out_dir = root / "OUT"
    shutil.rmtree(out_dir, ignore_errors=True)
    argv = [
        sys.executable,
        "-m",
        "mlops_cli",
        "images",
        "match",
        str(root / "refs"),
        str(root / case.folder),
        "-o",
        str(out_dir),
        "--json",
        *case.args,
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run(argv, capture_output=True, env=env, timeout=600)
    stderr = proc.stderr.decode(errors="replace")
    score = {
        "case": case.name,
        "what": case.what,
        "exit": proc.returncode,
        "expect_exit": case.expect_exit,
        "internal_error": "internal error" in stderr,
        "right": 0,
        "wrong": 0,
        "unmatched_right": 0,
        "should_pair": sum(v is not None for v in case.truth.values()),
        "should_stay_unmatched": sum(v is None for v in case.truth.values()),
        "leftovers_expected": len(case.leftovers),
        "leftovers_reported": 0,
        "flagged_wrong": 0,
        "flagged_right": 0,
        "misses": [],
    }
    try:
        doc = json.loads(proc.stdout or b"{}")
    except ValueError:
        doc = {}
    if case.expect_error is not None:
        message = (doc.get("error") or {}).get("message", "") + " " + str((doc.get("error") or {}).get("hint", ""))
        ok = proc.returncode == case.expect_exit and case.expect_error in message
        score["right"] = int(ok)
        score["should_pair"] = 1
        if not ok:
            score["misses"].append(f"expected a refusal naming {case.expect_error!r}; got: {message.strip()!r}")
        score["ok"] = ok and not score["internal_error"]
        return score
    strips = doc.get("strips", [])
    got = {}
    for strip in strips:
        pair = strip["matches"][0] if strip.get("matches") else {}
        got[_norm(strip["reference"])] = _norm(pair.get("file"))
    for ref, want in case.truth.items():
        ref, want = _norm(ref), _norm(want)
        have = got.get(ref, "<reference not listed>")
        if want is None:
            if have is None:
                score["unmatched_right"] += 1
            else:
                score["misses"].append(f"{ref}: has no output, paired with {have}")
        elif have == want:
            score["right"] += 1
        else:
            score["wrong"] += 1
            score["misses"].append(f"{ref}: got {have}, want {want}")
    folder = (doc.get("folders") or [{}])[0]
    flagged = {_norm(n) for n in folder.get("far_pairs", [])}
    for ref, want in case.truth.items():
        ref, want = _norm(ref), _norm(want)
        if ref in flagged:
            score["flagged_wrong" if got.get(ref) != want else "flagged_right"] += 1
    reported = {_norm(n) for n in folder.get("leftovers", [])}
    expected = {_norm(n) for n in case.leftovers}
    score["leftovers_reported"] = len(expected & reported)
    for name in sorted(expected - reported):
        score["misses"].append(f"{name}: should be left over")
    if proc.returncode != case.expect_exit:
        score["misses"].append(f"exit {proc.returncode}, expected {case.expect_exit}: {stderr.strip()[-300:]}")
    score["ok"] = (not score["misses"]) and not score["internal_error"]
    return score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/mlops-images-real")
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    built = build_cases(workdir)
    scores = [run_case(root, case) for root, case in built if not args.only or case.name in args.only]
    if args.json:
        print(json.dumps(scores, indent=1, ensure_ascii=True))
        return 0
    tot = {
        k: sum(s[k] for s in scores)
        for k in (
            "right",
            "wrong",
            "should_pair",
            "unmatched_right",
            "flagged_wrong",
            "flagged_right",
            "should_stay_unmatched",
            "leftovers_reported",
            "leftovers_expected",
        )
    }
    print(
        "| case | right / should pair | wrong | unmatched right | left over reported | exit (want) | internal error |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in scores:
        print(
            f"| {s['case']} | {s['right']}/{s['should_pair']} | {s['wrong']} | "
            f"{s['unmatched_right']}/{s['should_stay_unmatched']} | "
            f"{s['leftovers_reported']}/{s['leftovers_expected']} | {s['exit']} ({s['expect_exit']}) | "
            f"{'yes' if s['internal_error'] else 'no'} |"
        )
    print(
        f"| **total** | {tot['right']}/{tot['should_pair']} | {tot['wrong']} | "
        f"{tot['unmatched_right']}/{tot['should_stay_unmatched']} | "
        f"{tot['leftovers_reported']}/{tot['leftovers_expected']} | "
        f"{sum(s['exit'] == s['expect_exit'] for s in scores)}/{len(scores)} exit codes right | "
        f"{sum(s['internal_error'] for s in scores)} |"
    )
    print(f"cases fully right: {sum(s['ok'] for s in scores)}/{len(scores)}")
    wrong_any = tot["wrong"] + tot["should_stay_unmatched"] - tot["unmatched_right"]
    print(
        f"wrong or forced pairs flagged as far from the rest (far_pairs): {tot['flagged_wrong']}/{wrong_any}; "
        f"right pairs flagged (false alarms): {tot['flagged_right']}"
    )
    for s in scores:
        for miss in s["misses"][:6]:
            print(f"  {s['case']}: {ascii(miss)}", file=sys.stderr)
        if len(s["misses"]) > 6:
            print(f"  {s['case']}: ... {len(s['misses']) - 6} more", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
