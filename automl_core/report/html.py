"""The experiment report: one ``index.html`` with the PNG plots beside it.

``write_report(conn, name, out_dir)`` reads the experiment's results, draws the plots
of ``automl_core.report.plots`` and writes a page that needs nothing but the files in
``out_dir`` (styles are inline; no scripts, no network). Every value that came from the
database or a user is HTML-escaped. The page is written last, over a placeholder that
claims the folder first (its ``GENERATOR`` mark lets a rerun replace a report that was
cut short), so an ``index.html`` without "Report being written." is complete.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl_core.artifacts import check_local_folder, replace_file
from automl_core.errors import UserInputError
from automl_core.report import leaderboard as lb
from automl_core.report import plots
from automl_core.report.param_plots import plot_hyperparameters
from automl_core.store import repository as repo

if TYPE_CHECKING:
    import pandas as pd

    from automl_core.store.repository import Experiment

log = logging.getLogger(__name__)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { color: #a33; }
table.summary th { width: 14em; color: #555; font-weight: normal; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.85em; }
code { font-size: 0.9em; } .note { color: #777; font-style: italic; }
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt_time(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _summary_rows(
    exp: Experiment, board: pd.DataFrame, usage: plots.Utilisation | None
) -> list[tuple[str, str]]:
    """(label, escaped HTML) rows of the experiment summary table."""
    created, finished = exp.created_at, exp.finished_at
    rows = [
        ("method", _esc(exp.method)),
        ("dataset", _esc(exp.dataset)),
        ("status", _esc(exp.status)),
        ("seed", _esc(exp.seed)),
        ("started", _esc(_fmt_time(created))),
        ("finished", _esc(_fmt_time(finished))),
    ]
    if isinstance(created, datetime) and isinstance(finished, datetime):
        rows.append(("wall time", _esc(_duration((finished - created).total_seconds()))))
    if exp.airflow_run_id:
        rows.append(("Airflow run", _esc(exp.airflow_run_id)))
    if exp.parent_experiment:
        rows.append(
            (
                "narrowed from",
                _esc(
                    f"{exp.parent_experiment}: this search's space is that experiment's, "
                    "narrowed to its best trials"
                ),
            )
        )
    counts = board["status"].value_counts().sort_index()
    by_status = ", ".join(f"{n} {s}" for s, n in counts.items())
    rows.append(("trials", _esc(f"{len(board)} ({by_status})" if len(board) else "0")))
    rows.append(("epochs trained", _esc(int(board["epochs"].fillna(0).sum()))))
    rows.append(("training time", _esc(_duration(float(board["train_seconds"].fillna(0).sum())))))
    ranked = board.dropna(subset=["best_valid_accuracy"])
    if not ranked.empty:
        best = ranked.iloc[0]
        rows.append(
            (
                "best trial",
                _esc(
                    f"#{best['trial_id']}: validation accuracy {best['best_valid_accuracy']:.4f} "
                    f"(epoch {best['best_epoch']})"
                )
                + f"<br><code>{_esc(json.dumps(best['config'], sort_keys=True))}</code>",
            )
        )
    if usage is not None:
        rows.append(
            (
                "worker utilisation",
                _esc(
                    f"{usage.value:.1%} ({usage.busy_seconds:.1f} busy worker-seconds / "
                    f"({usage.workers} workers x {usage.wall_seconds:.1f} s))"
                ),
            )
        )
    return rows


def _num(value: Any, digits: int) -> str:
    if value is None or value != value:  # None, NaN or NA
        return "-"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "-"


def _int(value: Any) -> str:
    try:
        return "-" if value is None or value != value else str(int(value))
    except TypeError:  # pandas NA compares to NA
        return "-"


def _leaderboard_table(board: pd.DataFrame) -> str:
    head = (
        "<tr><th>rank</th><th>trial</th><th>status</th><th>bracket</th><th>rung</th>"
        "<th>epochs</th><th>best acc</th><th>best epoch</th><th>final acc</th>"
        "<th>final loss</th><th>time (s)</th><th>configuration</th></tr>"
    )
    body = []
    for rec in board.to_dict("records"):
        config = json.dumps(rec["config"], sort_keys=True)
        error = rec.get("error")
        detail = f"<br><span class='note'>{_esc(error)}</span>" if error else ""
        cells = [
            f"<td class='num'>{_int(rec['rank'])}</td>",
            f"<td class='num'>{_int(rec['trial_id'])}</td>",
            f"<td>{_esc(rec['status'])}</td>",
            f"<td class='num'>{_int(rec['bracket'])}</td>",
            f"<td class='num'>{_int(rec['rung'])}</td>",
            f"<td class='num'>{_int(rec['epochs'])}</td>",
            f"<td class='num'>{_num(rec['best_valid_accuracy'], 4)}</td>",
            f"<td class='num'>{_int(rec['best_epoch'])}</td>",
            f"<td class='num'>{_num(rec['final_valid_accuracy'], 4)}</td>",
            f"<td class='num'>{_num(rec['final_valid_loss'], 4)}</td>",
            f"<td class='num'>{_num(rec['train_seconds'], 1)}</td>",
            f"<td><code>{_esc(config)}</code>{detail}</td>",
        ]
        css = " class='failed'" if rec["status"] == repo.TrialState.FAILED else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    if not body:
        return "<p class='note'>This experiment has no trials yet.</p>"
    return f"<table>{head}{''.join(body)}</table>"


def _figure(path: Path | None, caption: str, missing: str) -> str:
    if path is None:
        return f"<p class='note'>{_esc(missing)}</p>"
    return (
        f"<figure><img src='{_esc(path.name)}' alt='{_esc(caption)}'>"
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _top_trials(board: pd.DataFrame, k: int) -> tuple[list[int], list[str]]:
    ranked = board.dropna(subset=["best_valid_accuracy"]).head(k)
    ids = [int(t) for t in ranked["trial_id"]]
    records = ranked.to_dict("records")
    configs = lb.differing([r["config"] for r in records])  # what sets the curves apart
    labels = [
        f"#{int(r['trial_id'])} ({r['best_valid_accuracy']:.3f}) {lb.short_config(c, 40)}"
        for r, c in zip(records, configs, strict=True)
    ]
    return ids, labels


# Names of the files a report writes. A folder is this tool's to overwrite when its
# index.html carries GENERATOR (or the footer of reports written before the marker was
# added), or when it has none of these files.
INDEX = "index.html"
_PLOTS = {
    "histogram": "accuracy_histogram.png",
    "by_trial": "best_by_trial.png",
    "by_time": "best_by_time.png",
    "rungs": "hyperband_rungs.png",
    "curves": "learning_curves.png",
    "params": "hyperparameters.png",
    "workers": "workers.png",
}
GENERATOR = '<meta name="generator" content="automl report">'
_OLD_FOOTER = re.compile(r'<p class="note">Generated [^<]* by automl ')


def check_report_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a Path, if a report may be written there.

    It may when it is a folder (or can be created as one, which the OS allows: see
    ``check_local_folder``) and either has an ``index.html`` written by a report, or none
    of the files a report writes. Raises UserInputError naming the folder and the fix
    otherwise; leaves nothing written.
    """
    fix = "give a folder path you may write to (it is created if missing)."
    out = check_local_folder(out_dir, "The report folder", fix, writable=True)
    index = out / INDEX
    if index.is_file():
        try:
            head = index.read_text(encoding="utf-8", errors="replace")
        except OSError:
            head = ""
        if GENERATOR in head or _OLD_FOOTER.search(head):
            return out
        taken = index
    else:
        names = (index, *(out / n for n in _PLOTS.values()))
        present = [p for p in names if p.exists() or p.is_symlink()]  # dangling too
        if not present:
            return out
        taken = present[0]
    raise UserInputError(
        f"The report folder {str(out_dir)!r} holds {str(taken)!r}, which was not written by "
        "an automl report and would be replaced: choose another folder, or remove the file "
        "if it may be replaced."
    )


def write_report(conn: Any, experiment_name: str, out_dir: str | Path, *, top_k: int = 5) -> Path:
    """Write the experiment's report into ``out_dir`` and return the path of ``index.html``.

    The folder is created if missing; files of an earlier report there are replaced,
    each by renaming a new file onto its name (``artifacts.replace_file``), so a symbolic link
    at a report file's name is replaced, never written through.
    Plots that have no data (e.g. no trial finished an epoch) are left out and the page
    says so. Raises UserInputError, before anything is written, for an unknown experiment
    or an ``out_dir`` that ``check_report_dir`` refuses (a file, inside a file, or holding
    files that a report did not write).
    """
    out = check_report_dir(out_dir)
    if top_k < 1:  # the CLI's --top
        raise UserInputError(
            f"--top (top_k) is {top_k}, but must be at least 1: the report's learning curves "
            "show the top K trials."
        )
    exp = repo.experiment_record(conn, experiment_name)
    board = lb.leaderboard(conn, experiment_name)
    epochs = lb.epoch_history(conn, experiment_name)
    jobs = lb.job_log(conn, experiment_name)
    hyperband = exp.method == "hyperband"
    rungs = lb.rung_results(conn, experiment_name) if hyperband else None
    out.mkdir(parents=True, exist_ok=True)
    index = out / INDEX
    if not index.exists():
        # Claimed before the plots: a report cut short (a killed task) leaves a folder
        # that check_report_dir still knows as a report's, so its retry may write there.
        placeholder = f"<!doctype html>{GENERATOR}<p>Report being written.</p>\n"
        replace_file(index, lambda fh: fh.write(placeholder.encode("utf-8")))

    usage = plots.utilisation(jobs)
    top_ids, top_labels = _top_trials(board, top_k)
    none_yet = "No trial has a validation result yet."
    figures = [
        _figure(
            plots.plot_accuracy_histogram(board, out / _PLOTS["histogram"]),
            "Final validation accuracy over all trials (dashed: the best).",
            none_yet,
        ),
        _figure(
            plots.plot_best_by_trial(board, out / _PLOTS["by_trial"]),
            "Best validation accuracy so far, trials in creation order.",
            none_yet,
        ),
        _figure(
            plots.plot_best_by_time(epochs, exp.created_at, out / _PLOTS["by_time"]),
            "Best validation accuracy so far against wall time (one point per recorded epoch).",
            none_yet,
        ),
    ]
    if rungs is not None:
        figures.append(
            _figure(
                plots.plot_hyperband_rungs(rungs, out / _PLOTS["rungs"]),
                "Hyperband: each trial's validation accuracy at each rung of its bracket.",
                "No rung has finished yet.",
            )
        )
    figures += [
        _figure(
            plot_hyperparameters(board, out / _PLOTS["params"]),
            "Each trial's best validation accuracy against the value of each hyperparameter "
            "that varies (log axis for wide positive ranges).",
            "No trial has a validation result yet, or no hyperparameter varies.",
        ),
        _figure(
            plots.plot_learning_curves(epochs, top_ids, out / _PLOTS["curves"], labels=top_labels),
            f"Validation accuracy per epoch of the top {len(top_ids)} trials.",
            none_yet,
        ),
        _figure(
            plots.plot_worker_timeline(jobs, out / _PLOTS["workers"]),
            "Model hopper: the trial each worker (one per partition) trained over time, "
            "and the number of busy workers.",
            "No sub-epoch job has finished yet.",
        ),
    ]
    page = _page(exp, board, usage, figures, repo.evaluations(conn, exp.id))
    replace_file(index, lambda fh: fh.write(page.encode("utf-8")))
    log.info("wrote the report of %s to %s", experiment_name, index)
    return index


def _evaluations_section(rows: Sequence[repo.EvaluationRow]) -> str:
    """Held-out results (``automl evaluate``), each with its confusion matrix."""
    if not rows:
        return (
            "<p>None yet: <code>automl evaluate EXPERIMENT --table TABLE</code> scores a "
            "labelled table the search never saw.</p>"
        )
    parts = []
    for r in rows:
        head = "".join(f"<th>{_esc(v)}</th>" for v in r.class_values)
        body = "".join(
            f"<tr><th>{_esc(v)}</th>{''.join(f'<td>{c}</td>' for c in counts)}</tr>"
            for v, counts in zip(r.class_values, r.confusion, strict=True)
        )
        parts.append(
            f"<h3>{_esc(r.table_name)}</h3><p>{r.rows} rows; trial {r.trial_id} at epoch "
            f"{r.epoch}: accuracy <b>{r.accuracy:.4f}</b>, loss {r.loss:.4f}.</p>"
            f"<table class='confusion'><tr><th>true \\ predicted</th>{head}</tr>{body}</table>"
        )
    return "".join(parts)


def _page(
    exp: Experiment,
    board: pd.DataFrame,
    usage: plots.Utilisation | None,
    figures: Sequence[str],
    evaluations: Sequence[repo.EvaluationRow] = (),
) -> str:
    from automl_core import package_version

    summary = "".join(
        f"<tr><th>{_esc(label)}</th><td>{value}</td></tr>"
        for label, value in _summary_rows(exp, board, usage)
    )
    spec = json.dumps(exp.spec, indent=2, sort_keys=True, default=str)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
{GENERATOR}
<title>Experiment {_esc(exp.name)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Experiment {_esc(exp.name)}</h1>
<table class="summary">{summary}</table>
<h2>Plots</h2>
{"".join(figures)}
<h2>Leaderboard</h2>
<p>Best validation accuracy first; ties by trial id; trials without a result last.</p>
{_leaderboard_table(board)}
<h2>Held-out evaluation</h2>
{_evaluations_section(evaluations)}
<h2>Search specification</h2>
<details><summary>spec</summary><pre>{_esc(spec)}</pre></details>
<p class="note">Generated {generated} by automl {_esc(package_version())}.</p>
</body></html>
"""
