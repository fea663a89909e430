"""`explainface synth`: export the synthetic faces and/or draw a contact sheet (`explainface.synthetic`)."""

from __future__ import annotations

import argparse

from explainface.argtypes import int_at_least, picture_path


def _cmd_synth(args: argparse.Namespace) -> int:
    """Export synthetic faces (`export_synthetic`) and/or draw a contact sheet of 4 identities x 3 samples."""
    if args.out is None and args.sheet is None:
        args.parser.error("synth needs --out, --sheet or both")
    if args.out is not None:
        from explainface.synthetic.export import export_synthetic

        r = export_synthetic(
            args.out,
            args.identities,
            args.per_identity,
            size=args.size,
            heldout_identities=args.heldout,
            seed=args.seed,
            difficulty=args.difficulty,
            image_format=args.format,
            pairs_per_fold=args.pairs_per_fold,
            workers=args.workers,
            progress=not args.quiet,
        )
        for split in ("train", "heldout"):
            if r[f"{split}_identities"]:
                n, per = r[f"{split}_identities"], r["per_identity"]
                print(f"{split + ':':<8} {r[f'{split}_dir']}  {n} identities x {per} = {n * per} images")
        if r["pairs_path"]:
            print(
                f"pairs:   {r['pairs_path']}  {r['pair_folds']} folds x "
                f"({r['pairs_per_fold']} same + {r['pairs_per_fold']} different)"
            )
        print(f"meta:    {r['meta_path']}  ({r['size']}x{r['size']} {r['image_format']}, {r['seconds']:.1f} s)")
    if args.sheet is not None:
        from explainface.synthetic import SyntheticFaces
        from explainface.synthetic.contact_sheet import contact_sheet, sample_grid

        n_ids, n_per = 4, 3
        samples = sample_grid(SyntheticFaces(args.seed, args.difficulty), n_ids, n_per, args.size)
        path = contact_sheet(samples, args.sheet, tile=args.tile, columns=n_per)
        print(f"sheet:   {path}  ({n_ids} identities x {n_per} samples: image | landmarks | parts)")
    return 0


def _difficulty(value: str) -> str | float:
    """`easy`/`medium`/`hard` or a number (the generator checks the range)."""
    try:
        return float(value)
    except ValueError:
        return value


def add_synth_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "synth",
        help="export synthetic faces (images, .pts landmarks, part maps, pairs.txt) and/or draw a contact sheet",
    )
    s.add_argument("--out", default=None, help="export folder (new, empty, or an earlier export)")
    s.add_argument("--identities", type=int_at_least(0), default=100, help="train identities (default 100)")
    s.add_argument("--per-identity", type=int_at_least(1), default=20, help="images per identity (default 20)")
    s.add_argument("--size", type=int_at_least(16), default=112, help="image side in pixels (default 112)")
    s.add_argument(
        "--heldout", type=int_at_least(0), default=None, help="held-out identities (default max(20, identities/5))"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--difficulty", type=_difficulty, default="medium", help="easy, medium, hard or a number")
    s.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format (default jpg, quality 95)")
    s.add_argument("--pairs-per-fold", type=int_at_least(0), default=300, help="same (and different) pairs per fold")
    s.add_argument(
        "--workers", type=int_at_least(0), default=0, help="generator processes (default 0: in this process)"
    )
    s.add_argument("--sheet", type=picture_path, default=None, help="PNG contact sheet of 4 identities x 3 samples")
    s.add_argument("--tile", type=int_at_least(16), default=160, help="contact-sheet tile size in pixels (default 160)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth, parser=s)
