"""``aelab-compress`` / ``aelab-decompress``: an autoencoder as an image codec, on real files.

::

    aelab-compress CKPT --split test --format uint8 --out test_codes.npz
    aelab-decompress CKPT test_codes.npz --out-dir decoded/ [--limit 100]
    aelab-compress CODEC_CKPT --split test --out test.aelc      # a learned codec: one range-coded file
    aelab-compress CODEC_CKPT --split test --per-image --out test_files/   # one file per image (00000.aelc, ...)
    aelab-compress CODEC_CKPT --photos --out photos.aelc        # data=photo_patches: the held-out photos, whole
    aelab-decompress CODEC_CKPT test.aelc --out-dir decoded/
    aelab-decompress CODEC_CKPT test_files/ --out-dir decoded/  # every .aelc of the folder (00000.png, ...)

``aelab-compress`` encodes every image of a split with the checkpoint's encoder and writes the codes
(float32, float16, or 8-bit with a per-dimension quantizer fitted on the *training* codes) to an
uncompressed ``.npz``; it prints the file's bytes per image and the compression ratio against the raw
``C·H·W``-byte images and against the gzip-compressed raw split. ``aelab-decompress`` decodes such a file to
PNGs (grey or RGB, the data's size). Each codes file carries a fingerprint of the weights, latent size, format
and quantizer it was written with; decompress refuses a file written by another checkpoint, naming both.
A learned codec's checkpoint (``model=codec``, ``model=codec_hyperprior``) writes one file of range-coded
latents instead (:mod:`aelab.codecs.container`: header, fingerprint, the images' strings), or with
``--per-image`` one file per image into the ``--out`` folder (a 7–8-byte header: what a user who compresses one
image gets), and decompress reproduces the encoder's reconstructions exactly; a truncated, corrupted or foreign file is refused naming it, before anything is
written. Checkpoints of packages outside aelab load with ``--trust mypkg`` (or ``AELAB_TRUST=mypkg``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.utils import save_image

from aelab.checkpoint import load_model, state_fingerprint
from aelab.cli import checkpoint_parser, returns_code
from aelab.codecs import classical, codes, container
from aelab.errors import UntrustedFileError
from aelab.evaluation.metrics import map_batches
from aelab.models.capabilities import Compressor
from aelab.trust import trusted_prefixes


@returns_code("aelab-compress")
def compress(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="aelab-compress",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[checkpoint_parser()],
    )
    p.add_argument("ckpt", help="checkpoint written by aelab-train")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--format", choices=codes.FORMATS, default="uint8", help="how each code number is stored")
    p.add_argument("--out", required=True, help="output file (.npz of codes; a codec's .aelc bitstream)")
    p.add_argument(
        "--photos", action="store_true", help="a codec on data=photo_patches: code the held-out photos whole"
    )
    p.add_argument(
        "--per-image", action="store_true", help="a learned codec: one file per image into the --out folder"
    )
    p.add_argument("--data-dir", default=None, help="data root (default: the one the run used)")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    model, run_cfg, ckpt = load_model(args.ckpt, device, trusted_prefixes(args.trust))
    data_cfg = OmegaConf.merge(run_cfg.data, {"data_dir": args.data_dir} if args.data_dir else {})
    dm = instantiate(data_cfg)
    if hasattr(dm, "prepare_data"):
        dm.prepare_data()
    if isinstance(model, Compressor):  # the model writes its own files
        return _compress_bitstream(model, dm, args, device)
    images, labels = dm.split_tensors(args.split)
    raw = classical.raw_bytes_per_image(images.shape[1:])
    z = map_batches(model.encode, images, args.batch_size, device)
    quantizer = None
    if args.format == "uint8":
        quantizer = codes.AffineQuantizer.fit(
            map_batches(model.encode, dm.split_tensors("train")[0], args.batch_size, device)
        )
    stored = codes.encode_codes(z, args.format, quantizer)
    size = codes.save_codes(args.out, stored, quantizer, labels, state_fingerprint(model.state_dict()))
    per_image = size / len(images)
    gz = classical.gzip_bytes_per_image(images)
    print(
        f"{len(images)} images → {args.out}: {size} bytes, {per_image:.1f} bytes/image; "
        f"ratio {raw / per_image:.1f}x vs raw ({raw} B), {gz / per_image:.1f}x vs gzip ({gz:.1f} B/image)"
    )
    return 0


@returns_code("aelab-decompress")
def decompress(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="aelab-decompress",
        description="Decode an aelab-compress file to PNGs.",
        parents=[checkpoint_parser()],
    )
    p.add_argument("ckpt", help="the checkpoint the codes were written with")
    p.add_argument(
        "codes", help=".npz or .aelc written by aelab-compress, or a folder of per-image .aelc files"
    )
    p.add_argument("--out-dir", required=True, help="folder for the PNGs (00000.png, ...)")
    p.add_argument("--limit", type=int, default=None, help="decode only the first N")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    model, _, ckpt = load_model(args.ckpt, device, trusted_prefixes(args.trust))
    if isinstance(model, Compressor):
        return _decompress_bitstream(model, args)
    stored, quantizer, fingerprint = codes.load_codes(args.codes)
    expected = codes.codes_fingerprint(
        state_fingerprint(model.state_dict()), model.latent_dim, codes.code_format(stored), quantizer
    )
    if fingerprint != expected:
        raise UntrustedFileError(
            f"{args.codes} was not written with {args.ckpt}: the codes' fingerprint is "
            f"{(fingerprint or 'missing')[:24]}…, the checkpoint's is {expected[:24]}… (weights sha256, then "
            f"{stored.shape[1]}-d vs latent_dim {model.latent_dim}, format, quantizer). Decode them with the "
            "checkpoint that wrote them."
        )
    if args.limit is not None:
        stored = stored[: args.limit]
    z = codes.decode_codes(stored, quantizer)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        i = 0
        for chunk in z.split(args.batch_size):
            for img in model.decode(chunk.to(device)).cpu():
                save_image(img, out / f"{i:05d}.png")
                i += 1
    print(f"{i} images decoded to {out}")
    return 0


def _compress_bitstream(model, dm, args, device) -> int:
    """A learned codec: every image of the split (or the held-out photos) into one file of its own format."""
    if args.photos:
        if not callable(getattr(dm, "test_photos", None)):
            raise ValueError(
                f"--photos needs data with whole test photographs (data=photo_patches), not {dm.name}"
            )
        images = dm.test_photos()
    else:
        images = list(dm.split_tensors(args.split)[0])
    model.update()  # a checkpoint of aelab-train holds its tables; a model of your own may not
    fingerprint = state_fingerprint(model.state_dict())
    pixels = sum(img.shape[-1] * img.shape[-2] for img in images)
    if args.per_image:
        files, _ = container.encode_each(model, images, fingerprint, args.batch_size, device)
        out = Path(args.out)
        if out.is_file():
            raise FileExistsError(
                f"--per-image writes into a folder; {out} is a file: name a folder with --out"
            )
        out.mkdir(parents=True, exist_ok=True)
        width = max(5, len(str(len(files) - 1)))
        for i, data in enumerate(files):
            (out / f"{i:0{width}d}.aelc").write_bytes(data)
        size = sum(len(f) for f in files)
        print(
            f"{len(images)} images → {out}/ (one file each): {size} bytes, {size / len(images):.2f} bytes/image, "
            f"{8 * size / pixels:.4f} bits/pixel (headers included)"
        )
        return 0
    data, _ = container.encode(model, images, fingerprint, args.batch_size, device)
    Path(args.out).write_bytes(data)
    size = len(data)
    print(
        f"{len(images)} images → {args.out}: {size} bytes, {size / len(images):.2f} bytes/image, "
        f"{8 * size / pixels:.4f} bits/pixel (header included)"
    )
    return 0


def _decompress_bitstream(model, args) -> int:
    """A learned codec's file back to PNGs; everything is checked before the output folder is created."""
    from PIL import Image

    path = Path(args.codes)
    model.update()
    fingerprint = state_fingerprint(model.state_dict())
    if path.is_dir():  # one file per image (aelab-compress --per-image)
        paths = sorted(path.glob("*.aelc"))
        if not paths:
            raise FileNotFoundError(
                f"no .aelc files in {path.resolve()}; write them with aelab-compress --per-image"
            )
        paths = paths[: args.limit] if args.limit is not None else paths
        images = container.decode_each(
            model, [(p.read_bytes(), str(p)) for p in paths], fingerprint, args.batch_size
        )
        names = [p.stem for p in paths]
    elif path.is_file():
        images = container.decode(model, path.read_bytes(), str(path), fingerprint)
        images = images[: args.limit] if args.limit is not None else images
        names = [f"{i:05d}" for i in range(len(images))]
    else:
        raise FileNotFoundError(f"codec file or folder {path.resolve()} does not exist")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, img in zip(names, images, strict=True):
        arr = img.numpy()
        Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)).save(out / f"{name}.png")
    print(f"{len(images)} images decoded to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(compress())
