"""``lockgate safety``: train, run and red-team the cyber / bio / chem classifiers.

Data goes to stdout, progress and info to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Safety classifiers (cyber / bio / chem): train the shipped artefact, classify JSONL, run the red-team eval.",
                  no_args_is_help=True)
_err = Console(stderr=True)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=_err, transient=False)


def _not_an_artefact(option: str, path: Path, exc: Exception) -> typer.Exit:
    import zipfile

    why = "not an .npz archive" if not zipfile.is_zipfile(path) else f"{type(exc).__name__}: {exc}"
    _err.print(f"[red]{option}: {path} is not a lockgate classifier artefact ({why})[/red]")
    return typer.Exit(2)


def _datasets(path: Optional[Path]) -> Path:
    """The shared datasets folder, or a clear error (exit 2) where it is not one."""
    from lockgate.safeguards.corpus import datasets_root

    try:
        return datasets_root(path)
    except FileNotFoundError as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def _classifier(path: Optional[Path], **kw):
    from lockgate.safeguards import Classifier
    from lockgate.safeguards.embed import check_environment

    try:  # the environment's settings first, so that a typo there is not blamed on the artefact
        check_environment()
    except ValueError as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    try:
        return Classifier.load(path, **kw)
    except (OSError, ValueError, KeyError) as exc:
        if path is None:  # the packaged artefact: a broken install, not a user error
            raise
        raise _not_an_artefact("--artefact", path, exc) from exc


class _Bar:
    """Adapts (label, done, total) callbacks to rich tasks."""

    def __init__(self, prog) -> None:
        self.prog = prog
        self.tasks: dict[str, int] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.prog.add_task(label, total=total)
        self.prog.update(self.tasks[label], completed=done, total=total)


@app.command()
def train(
    datasets: Optional[Path] = typer.Option(None, exists=True, file_okay=False,
                                            help="Shared datasets folder (default: ../shared/datasets, $LOCKGATE_DATASETS)."),
    out: Optional[Path] = typer.Option(None, help="Artefact path (default: the packaged src/lockgate/safeguards/artefacts/safety_v1.npz)."),
    cache: Optional[Path] = typer.Option(None, help="MiniLM embedding cache file (speed only)."),
    calibrate_only: Optional[Path] = typer.Option(
        None, "--calibrate-only", metavar="ARTEFACT",
        help="Keep ARTEFACT's trained weights and only re-set its thresholds, stage-3 gates and mix on the calibration "
             "split (minutes instead of about an hour); writes --out, default ARTEFACT itself."),
    hardneg_fpr: Optional[float] = typer.Option(
        None, min=0.0, max=1.0,
        help="The operating point: per-domain share of the calibration split's hard negatives (benign prompts in "
             "the three domains, counted per phrase) that the thresholds may flag (default calibrate.HARDNEG_FPR, "
             "0.03). Higher catches more and refuses more legitimate security, biology and chemistry questions."),
    benign_fpr: Optional[float] = typer.Option(
        None, min=0.0, max=1.0,
        help="Per-domain share of the calibration split's ordinary benign prompts that the thresholds may flag "
             "(default calibrate.BENIGN_FPR, 0.005)."),
    gate_benign: Optional[float] = typer.Option(
        None, min=0.001, max=1.0,
        help="Share of ordinary benign calibration prompts per domain that may reach MiniLM (stage 3; default "
             "calibrate.GATE_BENIGN, 0.10): lower is faster on long prompts and catches less (docs/safety.md)."),
    gate_long: Optional[float] = typer.Option(
        None, min=0.001, max=1.0,
        help="For the gates of long texts (more than calibrate.LONG_SEGMENTS segments): share of the ~512-token "
             "benign calibration prompts per domain that may reach MiniLM (default calibrate.GATE_LONG, 0.10)."),
    long_benign_fpr: Optional[float] = typer.Option(
        None, min=0.0, max=1.0,
        help="Long texts' own thresholds: per-domain share of the long benign calibration prompts (README, code, "
             "prose) that may be flagged (default calibrate.LONG_BENIGN_FPR, 0.01)."),
    long_hardneg_fpr: Optional[float] = typer.Option(
        None, min=0.0, max=1.0,
        help="Long texts' own thresholds: per-domain share of the long hard-negative calibration prose that may be "
             "flagged (default calibrate.LONG_HARDNEG_FPR, 0.03)."),
    long_recall_slack: Optional[float] = typer.Option(
        None, min=0.0, max=1.0,
        help="Most of the long calibration positives' recall that the long texts' thresholds may give up for "
             "those budgets (default calibrate.LONG_RECALL_SLACK, 0.01)."),
    int8: bool = typer.Option(
        False, "--int8/--float32",
        help="Stage 3's (MiniLM's) precision at run time; thresholds are set with the same one. int8 about "
             "halves stage 3's time on one core, at a measured false-positive cost (docs/safety.md)."),
) -> None:
    """Rebuild the classifier artefact from data (fixed seeds, sorted inputs; ~92 min on 2 cores, see docs/safety.md)."""
    from lockgate.safeguards.cache import EmbeddingCache
    from lockgate.safeguards.train import recalibrate
    from lockgate.safeguards.train import train as do_train

    if calibrate_only is not None:
        if not calibrate_only.is_file():
            _err.print(f"[red]--calibrate-only: no artefact at {calibrate_only}[/red]")
            raise typer.Exit(2)
        from lockgate.safeguards.classifier import read_artefact

        try:  # fail now, not after the minutes of loading the calibration split
            read_artefact(calibrate_only)
        except (OSError, ValueError, KeyError) as exc:  # not an .npz, or one without lockgate's metadata
            raise _not_an_artefact("--calibrate-only", calibrate_only, exc) from exc
    datasets = _datasets(datasets)
    with _progress() as prog:
        bar = _Bar(prog)
        kw = dict(progress=bar, log=lambda m: prog.console.print(m, markup=False), cache=EmbeddingCache(cache, progress=bar) if cache else None)
        # options left unset keep the calibrate module's defaults
        kw.update({k: v for k, v in (("hardneg_fpr", hardneg_fpr), ("benign_fpr", benign_fpr),
                                     ("gate_benign", gate_benign), ("gate_long", gate_long),
                                     ("long_benign_fpr", long_benign_fpr), ("long_hardneg_fpr", long_hardneg_fpr),
                                     ("long_recall_slack", long_recall_slack))
                   if v is not None}, int8=int8)
        meta = recalibrate(calibrate_only, datasets, out, **kw) if calibrate_only else do_train(datasets, out, **kw)
    _err.print_json(json.dumps({"thresholds": meta["thresholds"], "screen_thresholds": meta["screen_thresholds"],
                                "gate_thresholds_long": meta.get("gate_thresholds_long"),
                                "thresholds_long": meta.get("thresholds_long")}))


@app.command()
def classify(
    file: str = typer.Argument("-", help="JSONL file with {\"id\", \"text\"} per line, or - for stdin."),
    profile: str = typer.Option("strict", "--profile", "-p", help="Profile name (strict, defender) or a YAML file."),
    artefact: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Classifier artefact (default: the shipped one)."),
) -> None:
    """Classify JSONL prompts; writes {"id", "flagged", "domain", "scores", "action"} JSONL to stdout."""
    from lockgate.safeguards.profiles import load_profile

    try:
        prof = load_profile(profile)
    except ValueError as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if file != "-" and not Path(file).is_file():
        _err.print(f"[red]no such file: {file}[/red]")
        raise typer.Exit(2)
    clf = _classifier(artefact)
    fh = sys.stdin if file == "-" else open(file, encoding="utf-8")
    n = 0
    try:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                _err.print(f"[red]line {lineno}: invalid JSON ({exc})[/red]")
                raise typer.Exit(2) from exc
            text = row.get("text")
            if text is None and isinstance(row.get("messages"), list):
                v = clf.classify_conversation(row["messages"])
            else:
                v = clf.classify(str(text or ""))
            d = prof.decide(v)
            out = {
                "id": row.get("id"),
                "flagged": v.flagged,
                "domain": v.domain,
                "scores": {k: round(s, 6) for k, s in v.scores.items()},
                "action": d.action,
            }
            if d.model:
                out["model"] = d.model
            sys.stdout.write(json.dumps(out) + "\n")
            n += 1
    finally:
        if fh is not sys.stdin:
            fh.close()
    sys.stdout.flush()
    _err.print(f"classified {n} rows with profile {prof.name!r}", style="dim")


@app.command("eval")
def eval_(
    datasets: Optional[Path] = typer.Option(None, exists=True, file_okay=False,
                                            help="Shared datasets folder (default: ../shared/datasets, $LOCKGATE_DATASETS)."),
    out: Path = typer.Option(Path("reports/safety"), help="Report folder (Markdown + PNG + JSON)."),
    extra: list[Path] = typer.Option([], "--extra", exists=True, dir_okay=False,
                                     help="Extra labelled CSV/JSONL: text + label cyber|bio|chem|benign|none|hardneg "
                                          "(another label, or a row without text, stops the run)."),
    n_benign: int = typer.Option(1000, help="Ordinary benign prompts to sample (Alpaca val, eval only)."),
    n_transform_benign: int = typer.Option(100, help="Benign seeds and hard-negative seeds per transform (each)."),
    n_long: int = typer.Option(100, help="Ordinary ~512-token prompts per kind (README summaries, code reviews; built from installed text)."),
    baselines: bool = typer.Option(True, help="Also score the keyword and embedding+LR baselines."),
    artefact: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Classifier artefact (default: the shipped one)."),
) -> None:
    """Red-team evaluation on held-out sets with jailbreak transforms; writes reports/safety/."""
    from lockgate.safeguards.evaluate import run_eval
    from lockgate.safeguards.labelled import LabelledFileError

    datasets = _datasets(datasets)
    clf = _classifier(artefact, preload=True, memo=0)  # every text judged cold: its latency, not a remembered one
    try:
        with _progress() as prog:
            rep = run_eval(clf, out, datasets=datasets, extra=list(extra), n_benign=n_benign,
                           n_transform_benign=n_transform_benign, n_long=n_long, baselines=baselines,
                           progress=_Bar(prog), log=lambda m: prog.console.print(m, markup=False))
    except LabelledFileError as exc:  # raised before any prompt is classified
        _err.print(f"[red]--extra: {exc}[/red]")
        raise typer.Exit(2) from exc
    o = rep["overall"]
    _err.print(f"TPR {o['tpr']:.3f}  FPR benign {o['fpr_benign']:.3f}  FPR hard-neg {o['fpr_hardneg']:.3f}  "
               f"FPR long benign {o['fpr_benign_long']:.3f}  -> {out / 'README.md'}")
    sys.stdout.write(json.dumps({"overall": o, "domains": rep["domains"], "transforms": rep["transforms"]}, indent=2) + "\n")
