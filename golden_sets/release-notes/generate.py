#!/usr/bin/env python3
"""Generate the synthetic release-notes set: golden.jsonl (50) and train.jsonl (320) beside this file.

Each example is the merged commits / pull requests of one release of a fictitious project. The generator
first picks the user-facing changes (each written once as a developer's commit and once as a user-facing
note), then mixes in internal commits (dependency bumps, CI, refactors, docs) and sometimes a feature that
is reverted in the same release. The reference notes list exactly the user-facing changes that survive,
under fixed section headings, so they are correct by construction. Standard library only; the same
--seed gives byte-identical files.

    python golden_sets/release-notes/generate.py [--seed 20261125] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

N_GOLDEN, N_TRAIN = 50, 320
SECTIONS = {"breaking": "Breaking changes", "security": "Security", "feature": "New features",
            "improvement": "Improvements", "fix": "Bug fixes"}
COMMIT_TYPE = {"breaking": "feat", "security": "fix", "feature": "feat", "improvement": "perf", "fix": "fix"}
LABEL = {"breaking": "breaking", "security": "security", "feature": "feature", "improvement": "enhancement",
         "fix": "bug"}

# A change: kind | scope | commit title | commit body ("" for none) | note | alternative note | short name.
# The two notes say the same thing in different words; the short name feeds the summary sentence.
# Slots: {p} a percentage, {n} a small count, {m} a larger count.
PROJECTS = {
    "Tallyho": ("a command-line time tracker", ["click", "rich", "pydantic", "pytest", "ruff"], """
feature|export|add CSV export for weekly reports|Adds `tally export --format csv` with date, project and duration columns.|Export weekly reports as CSV with `tally export --format csv`.|Weekly reports can now be exported to CSV (`tally export --format csv`).|CSV export
feature|timers|support pausing a running timer|New `tally pause` and `tally resume` commands keep one entry instead of two.|Pause and resume a running timer with `tally pause` and `tally resume`.|New `tally pause` / `tally resume` commands pause a timer without splitting the entry.|pausable timers
feature|tags|allow tagging entries|Entries accept `--tag`, repeatable; reports can filter by tag.|Tag time entries with `--tag` and filter reports by tag.|Entries can carry tags (`--tag`), and reports can be filtered by them.|tags
feature|reports|add monthly summary report|`tally report --month` prints totals per project for the month.|A new monthly summary: `tally report --month` shows totals per project.|`tally report --month` adds a per-project summary for the whole month.|monthly reports
feature|sync|sync entries with a WebDAV server||Sync your entries to a WebDAV server.|Entries can now be synced with a WebDAV server.|WebDAV sync
improvement|reports|render reports {p}% faster|Reports no longer re-read the whole log for each project.|Reports render about {p}% faster on large logs.|Large reports now render roughly {p}% faster.|faster reports
improvement|cli|suggest the closest command on typos||Mistyped commands now suggest the closest match.|A mistyped command now gets a "did you mean" suggestion.|command suggestions
improvement|config|read config from XDG_CONFIG_HOME||The config file is now also found under `$XDG_CONFIG_HOME`.|`$XDG_CONFIG_HOME` is now respected when looking for the config file.|XDG config support
fix|config|crash when the config file is empty|An empty `config.toml` raised a KeyError on startup.|Fixed a crash on startup when the config file is empty.|Tallyho no longer crashes when `config.toml` is empty.|
fix|timers|timer lost after laptop sleep|Durations used the monotonic clock, which stops during sleep on macOS.|Timers keep counting correctly across laptop sleep.|Fixed timers losing time while the laptop was asleep.|
fix|export|wrong totals for entries spanning midnight||Entries that span midnight are now split correctly in totals.|Fixed wrong daily totals for entries that cross midnight.|
fix|reports|week starts on Sunday for some locales|Week boundaries now follow the configured `week_start`.|Weekly reports respect the `week_start` setting again.|Fixed weekly reports starting on the wrong day.|
fix|cli|--help shows the wrong default for --format||`--help` now shows the correct default for `--format`.|Fixed the default shown for `--format` in `--help`.|
breaking|cli|drop support for Python 3.8|Python 3.8 is end-of-life. BREAKING CHANGE: requires Python 3.9+.|Python 3.8 is no longer supported; Tallyho now needs Python 3.9 or newer.|Support for Python 3.8 has been dropped: install on Python 3.9 or later.|Python 3.8 support removed
breaking|config|rename `default_project` to `project`|BREAKING CHANGE: the old key is no longer read.|The config key `default_project` is now `project`; rename it in your config file.|Rename `default_project` to `project` in your config: the old key is ignored.|config key renamed
security|sync|do not log WebDAV passwords in debug output|Debug logs printed the full sync URL including credentials.|Debug logs no longer include your WebDAV password.|WebDAV credentials are no longer written to debug logs.|
"""),
    "Lumen": ("a Python HTTP client library", ["httpcore", "certifi", "idna", "anyio", "mypy"], """
feature|retries|add configurable retry policy|`Client(retries=Retry(total=3, backoff=0.5))`; retries idempotent requests only by default.|Configure automatic retries with `Client(retries=Retry(...))`.|A new `Retry` policy retries failed idempotent requests automatically.|retry policies
feature|streaming|support streaming uploads from async iterators||Upload request bodies from async iterators.|Request bodies can now be streamed from an async iterator.|streaming uploads
feature|proxies|read proxy settings from environment|Honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY unless `trust_env=False`.|Proxy settings are read from `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`.|Lumen now picks up proxies from the standard `*_PROXY` environment variables.|proxy environment variables
feature|auth|add bearer token auth helper||A `BearerAuth` helper adds bearer tokens to requests.|New `BearerAuth` helper for token-authenticated APIs.|bearer auth
feature|sessions|persist cookies to disk|`CookieJar.save(path)` and `CookieJar.load(path)`.|Cookies can be saved to and loaded from disk with `CookieJar.save()` and `CookieJar.load()`.|`CookieJar` gains `save()` and `load()` to keep cookies between runs.|persistent cookies
improvement|pool|reuse connections across redirects|Cuts connection setup on redirect chains by about {p}%.|Redirects reuse pooled connections, cutting connection setup by about {p}%.|Redirect chains are about {p}% cheaper thanks to connection reuse.|connection reuse
improvement|errors|include the URL in timeout errors||Timeout errors now say which URL timed out.|`TimeoutError` messages now include the request URL.|clearer timeout errors
improvement|typing|ship complete type hints||Type hints now cover the whole public API.|The public API is now fully typed.|complete type hints
fix|timeouts|read timeout ignored for chunked responses|The timeout was only applied to the first chunk.|The read timeout now applies to every chunk of a chunked response.|Fixed read timeouts being ignored after the first chunk.|
fix|redirects|drop Authorization header on cross-host redirect|Previously kept when redirecting to another host.|The `Authorization` header is no longer sent after a redirect to another host.|Fixed credentials leaking to other hosts on redirect.|
fix|encoding|wrong charset detection for JSON without a charset||JSON responses without a charset are decoded as UTF-8.|Fixed mis-decoded JSON responses that do not declare a charset.|
fix|pool|connection leak when a request is cancelled|Cancelled requests left the connection checked out of the pool.|Cancelling a request no longer leaks a pooled connection.|Fixed a connection leak after cancelled requests.|
fix|urls|double-encoded query parameters||Query parameters containing `%` are no longer encoded twice.|Fixed double encoding of query parameters that contain `%`.|
breaking|api|remove the deprecated `Client.send_sync`|Deprecated since 1.4. BREAKING CHANGE: use `Client.send`.|`Client.send_sync` has been removed; use `Client.send` instead.|The deprecated `Client.send_sync` is gone: call `Client.send`.|`send_sync` removed
breaking|timeouts|default timeout is now {n}0 seconds|BREAKING CHANGE: requests previously had no timeout by default.|Requests now time out after {n}0 seconds by default; pass `timeout=None` to wait forever.|A default timeout of {n}0 seconds now applies; use `timeout=None` for the old behaviour.|a default timeout
security|tls|verify hostnames for IP-address certificates|Certificates issued for IP addresses were accepted for any host.|TLS hostname checks now also apply to certificates issued for IP addresses.|Fixed TLS verification accepting IP-address certificates for the wrong host.|
"""),
    "Driftwood": ("a self-hosted photo gallery", ["django", "pillow", "celery", "eslint", "webpack"], """
feature|albums|add shared albums with invite links|Owners create an invite link; guests can view and upload.|Share an album through an invite link; guests can view and add photos.|Albums can now be shared with an invite link that lets guests view and upload.|shared albums
feature|search|search photos by place name|Uses the reverse-geocoded location stored at upload.|Search photos by the place they were taken.|You can now search for photos by place name.|place search
feature|uploads|resume interrupted uploads||Interrupted uploads resume where they stopped.|Large uploads now resume after a dropped connection.|resumable uploads
feature|viewer|add a slideshow mode|Press `S` in the viewer; interval configurable.|A slideshow mode in the viewer (press `S`).|The photo viewer has a new slideshow mode, started with `S`.|a slideshow mode
feature|import|import from Google Takeout archives|Reads the JSON sidecar files for dates and descriptions.|Import Google Takeout archives, keeping dates and descriptions.|Google Takeout archives can now be imported with their dates and captions.|Takeout import
improvement|thumbnails|generate thumbnails {p}% faster|Switches to Pillow's draft mode for JPEGs.|Thumbnails are generated about {p}% faster.|Thumbnail generation is roughly {p}% faster.|faster thumbnails
improvement|ui|remember the grid size per album||The grid size is remembered for each album.|Each album now keeps its own grid size.|per-album grid size
improvement|mobile|larger tap targets on phones||Buttons are easier to tap on phones.|Tap targets are bigger on small screens.|better mobile controls
fix|uploads|HEIC photos rotated sideways|EXIF orientation was ignored for HEIC files.|HEIC photos are no longer shown sideways.|Fixed sideways HEIC photos.|
fix|albums|cover photo reset after reordering||Reordering an album no longer resets its cover photo.|Fixed album covers resetting after reordering photos.|
fix|search|search ignores accents|"Zurich" now also finds "Zürich".|Search now matches names with and without accents.|Fixed search missing results that differ only in accents.|
fix|viewer|video playback stops after {n} seconds on Safari||Videos no longer stop after {n} seconds in Safari.|Fixed videos stopping after {n} seconds in Safari.|
fix|trash|trash not emptied after {m} days|The cleanup task was never scheduled.|Photos in the trash are deleted after {m} days as documented.|Fixed the trash never being emptied automatically.|
breaking|deploy|require PostgreSQL 13 or newer|BREAKING CHANGE: PostgreSQL 12 is no longer supported.|PostgreSQL 13 or newer is now required; upgrade the database before updating.|Support for PostgreSQL 12 has ended: upgrade to PostgreSQL 13+ first.|PostgreSQL 13+ required
breaking|api|API tokens now expire after {m} days|BREAKING CHANGE: existing tokens expire {m} days after this release.|API tokens now expire after {m} days; create a new token when yours expires.|API tokens are no longer permanent and expire after {m} days.|expiring API tokens
security|sharing|invite links could be guessed|Invite links used a short sequential id; now 128-bit random.|Album invite links are now long random tokens that cannot be guessed.|Fixed guessable album invite links.|
"""),
    "Quill": ("a Markdown note-taking app", ["electron", "codemirror", "yjs", "vitest", "typescript"], """
feature|editor|add table editing toolbar||A toolbar for inserting and editing Markdown tables.|Markdown tables get an editing toolbar.|a table toolbar
feature|export|export notes to PDF|Uses the print stylesheet; keeps code highlighting.|Export any note to PDF.|Notes can now be exported as PDF files.|PDF export
feature|sync|end-to-end encrypted sync|Keys never leave the device; opt in under Settings > Sync.|Turn on end-to-end encrypted sync under Settings > Sync.|Sync can now be end-to-end encrypted (Settings > Sync).|encrypted sync
feature|search|full-text search across attachments|Indexes text inside PDF attachments.|Search now finds text inside PDF attachments.|Full-text search now covers PDF attachments too.|attachment search
feature|themes|add a high-contrast theme||A new high-contrast theme.|Quill now ships a high-contrast theme.|a high-contrast theme
improvement|startup|start {p}% faster on large vaults|Notes are indexed lazily after the window opens.|Large vaults open about {p}% faster.|Startup is around {p}% faster with big vaults.|faster startup
improvement|editor|smoother scrolling in long notes||Scrolling long notes is smoother.|Long notes scroll more smoothly.|smoother scrolling
improvement|links|update links when a note is renamed||Renaming a note now updates links to it.|Links to a note are updated when you rename it.|automatic link updates
fix|editor|cursor jumps to the top after undo||Undo no longer moves the cursor to the top of the note.|Fixed the cursor jumping to the top after undo.|
fix|sync|duplicate notes after offline edits|Conflicting edits made offline created copies.|Editing offline no longer creates duplicate notes.|Fixed duplicate notes appearing after offline edits.|
fix|export|images missing from exported HTML||Exported HTML now includes the note's images.|Fixed missing images in HTML exports.|
fix|windows|crash on startup with non-ASCII user names|Paths were decoded with the ANSI code page.|Fixed a crash on Windows when the user name has non-ASCII characters.|Quill no longer crashes on Windows for user names with accents.|
fix|tags|tags with hyphens not recognised||Tags containing hyphens are recognised.|Fixed tags with hyphens being ignored.|
breaking|plugins|new plugin API v2|BREAKING CHANGE: v1 plugins no longer load; see the migration guide.|Plugins must use the new plugin API v2; v1 plugins no longer load.|The plugin API is now v2, and v1 plugins stop loading: update them using the migration guide.|plugin API v2
breaking|platform|drop macOS 10.15 support|BREAKING CHANGE: Electron 30 requires macOS 11.|macOS 10.15 is no longer supported; Quill needs macOS 11 or newer.|Quill now requires macOS 11 or later.|macOS 10.15 support removed
security|links|block javascript: URLs in notes|Clicking such a link ran code in the app.|`javascript:` links in notes are now blocked.|Fixed `javascript:` links in notes being able to run code.|
"""),
    "Harbor": ("a container deployment dashboard", ["react", "grpc-go", "prometheus-client", "golangci-lint", "vite"], """
feature|deploys|one-click rollback to the previous release|Shows the diff of image tags before confirming.|Roll back to the previous release with one click.|Deployments can be rolled back to the previous release in one click.|one-click rollback
feature|logs|live log tail across all replicas||Tail logs from every replica of a service at once.|Live logs now stream from all replicas together.|multi-replica log tail
feature|alerts|Slack notifications for failed deploys|Configure a webhook per project.|Get a Slack message when a deploy fails.|Failed deploys can now notify a Slack channel.|Slack alerts
feature|rbac|read-only viewer role|Viewers can see status and logs but not deploy.|A new read-only Viewer role.|Teams can add members with a read-only Viewer role.|a viewer role
feature|secrets|manage secrets from the dashboard||Create and rotate secrets from the dashboard.|Secrets can now be created and rotated in the dashboard.|secret management
improvement|ui|status page loads {p}% faster|Batches the per-service status queries.|The status page loads about {p}% faster.|Status now loads roughly {p}% faster for large projects.|a faster status page
improvement|deploys|show progress per replica||Deploys show progress for each replica.|Per-replica progress is shown during deploys.|per-replica progress
improvement|cli|`harbor deploy --wait` exits non-zero on failure||`harbor deploy --wait` now exits with an error code when the deploy fails.|With `--wait`, `harbor deploy` returns a failing exit code if the deploy fails.|better CI exit codes
fix|logs|log view freezes after {m},000 lines|The browser kept every line in memory.|The log view no longer freezes on long logs.|Fixed the log view freezing after {m},000 lines.|
fix|deploys|rollback button shown for first deploy||The rollback button is hidden when there is nothing to roll back to.|Fixed a rollback button appearing on a service's first deploy.|
fix|alerts|duplicate alerts after restart|Alert state was not persisted.|Restarting Harbor no longer re-sends old alerts.|Fixed duplicate alerts after a restart.|
fix|auth|session expires while the tab is open||Sessions are refreshed while the dashboard is open.|Fixed being logged out while actively using the dashboard.|
fix|metrics|CPU chart off by a factor of {n} on multi-core nodes|Millicores were divided by the core count twice.|CPU charts show the right values on multi-core nodes.|Fixed CPU usage charts being {n}x too low on multi-core nodes.|
breaking|api|remove v1 REST endpoints|BREAKING CHANGE: use /api/v2; v1 was deprecated in 3.2.|The v1 REST API has been removed; use `/api/v2`.|`/api/v1` is gone: move your integrations to `/api/v2`.|the v1 API removed
breaking|config|environment variables now need the HARBOR_ prefix|BREAKING CHANGE: `DATABASE_URL` is now `HARBOR_DATABASE_URL`.|Environment variables now need the `HARBOR_` prefix (for example `HARBOR_DATABASE_URL`).|Rename your environment variables with the `HARBOR_` prefix, such as `HARBOR_DATABASE_URL`.|prefixed environment variables
security|rbac|viewers could trigger deploys through the API|The API did not check the role on POST /deploys.|Viewers can no longer start deploys through the API.|Fixed the API letting read-only users start deploys.|
"""),
}
INTERNAL = [
    ("chore(deps): bump {dep} from {v1} to {v2}", "Bump {dep} from {v1} to {v2}"),
    ("chore(deps-dev): bump {dev} from {v1} to {v2}", "Bump {dev} from {v1} to {v2}"),
    ("ci: cache dependencies in the test workflow", "Cache dependencies in CI"),
    ("ci: run the test suite on {platform}", "Run CI on {platform}"),
    ("docs: fix typo in {doc}", "Fix typo in {doc}"),
    ("docs: update the contributing guide", "Update CONTRIBUTING.md"),
    ("refactor({scope}): extract {scope} helpers into their own module", "Refactor {scope} helpers"),
    ("test({scope}): add regression tests for {scope}", "Add tests for {scope}"),
    ("chore: update .gitignore", "Update .gitignore"),
    ("build: pin {dev} to {v2}", "Pin {dev} to {v2}"),
    ("style: apply the formatter to the {scope} module", "Format {scope} module"),
    ("chore(release): bump version to {version}", "Release {version}"),
]
PLATFORMS = ["Windows", "macOS 14", "Ubuntu 24.04", "ARM runners"]
DOCS = ["README.md", "the installation guide", "the FAQ", "CHANGELOG.md", "the API reference"]
SUMMARY_OPENERS = ["This release", "{project} {version}"]
COUNT_WORDS = "zero one two three four five six seven eight nine".split()


@dataclass(frozen=True)
class Change:
    kind: str
    scope: str
    title: str
    body: str
    note: str
    alt_note: str
    short: str


def parse_changes(block: str, rng: random.Random) -> list[Change]:
    values = {"p": rng.choice([20, 25, 30, 35, 40, 50, 60]), "n": rng.randint(2, 9), "m": rng.choice([30, 60, 90])}
    return [Change(*(part.format(**values) for part in line.split("|"))) for line in block.strip().splitlines()]


def next_version(rng: random.Random, kinds: set[str]) -> tuple[str, str]:
    major, minor, patch = rng.randint(0, 4), rng.randint(0, 12), rng.randint(0, 6)
    previous = f"{major}.{minor}.{patch}"
    if "breaking" in kinds and major > 0:
        return previous, f"{major + 1}.0.0"
    if kinds & {"breaking", "feature", "improvement"}:
        return previous, f"{major}.{minor + 1}.0"
    return previous, f"{major}.{minor}.{patch + 1}"


def commit_line(change: Change, style: str, pr: int) -> str:
    """The change as a developer titled it: a conventional commit, a labelled or a plain pull request."""
    if style == "conventional":
        scope = "security" if change.kind == "security" else change.scope
        bang = "!" if change.kind == "breaking" else ""
        return f"{COMMIT_TYPE[change.kind]}({scope}){bang}: {change.title} (#{pr})"
    title = change.title[0].upper() + change.title[1:]
    if style == "labels":
        return f"[{LABEL[change.kind]}] {title} (#{pr})"
    return f"{'Security: ' if change.kind == 'security' else ''}{title} (#{pr})"


def internal_line(rng: random.Random, style: str, deps: list[str], scopes: list[str], version: str) -> str:
    conventional, plain = rng.choice(INTERNAL)
    template = conventional if style == "conventional" else plain
    v1 = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
    v2 = v1.rsplit(".", 1)[0] + f".{int(v1.rsplit('.', 1)[1]) + rng.randint(1, 4)}"
    return template.format(dep=rng.choice(deps[:3]), dev=rng.choice(deps[3:]), v1=v1, v2=v2,
                           platform=rng.choice(PLATFORMS), doc=rng.choice(DOCS), scope=rng.choice(scopes),
                           version=version)


def join_words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def summary(rng: random.Random, project: str, version: str, by_kind: dict[str, list[Change]]) -> str:
    """One or two sentences built from the short names of the changes."""
    parts = []
    if by_kind["feature"]:
        shorts = [c.short for c in by_kind["feature"]]
        parts.append("adds " + join_words(shorts[:3] + (["more"] if len(shorts) > 3 else [])))
    if by_kind["improvement"]:
        parts.append("brings " + join_words([c.short for c in by_kind["improvement"]][:2]))
    fixes = len(by_kind["fix"])
    if fixes:
        parts.append("fixes a bug" if fixes == 1 else f"fixes {COUNT_WORDS[fixes]} bugs")
    if by_kind["security"]:
        parts.append("closes a security issue")
    opener = rng.choice(SUMMARY_OPENERS).format(project=project, version=version)
    if not by_kind["feature"] and not by_kind["improvement"] and not by_kind["breaking"]:
        subject = "This is" if opener == "This release" else f"{opener} is"
        text = f"{subject} a maintenance release that {join_words(parts)}."
    else:
        text = f"{opener} {join_words(parts)}." if parts else f"{opener} contains breaking changes."
    if by_kind["breaking"]:
        shorts = [c.short for c in by_kind["breaking"]]
        text += f" Read the breaking changes before upgrading: {join_words(shorts)}."
    return text


def notes(project: str, version: str, opening: str, by_kind: dict[str, list[Change]], alt: bool) -> str:
    lines = [f"## {project} {version}", "", opening]
    for kind, heading in SECTIONS.items():
        if by_kind[kind]:
            lines += ["", f"### {heading}"] + [f"- {c.alt_note if alt else c.note}" for c in by_kind[kind]]
    return "\n".join(lines)


def make_example(rng: random.Random, project: str) -> dict:
    description, deps, block = PROJECTS[project]
    changes = parse_changes(block, rng)
    pool = {kind: [c for c in changes if c.kind == kind] for kind in SECTIONS}
    shape = rng.choice(["patch", "minor", "minor", "minor", "major"])
    chosen: list[Change] = []
    if shape == "patch":
        chosen += rng.sample(pool["fix"], rng.randint(1, 4))
        chosen += pool["security"] if rng.random() < 0.3 else []
    else:
        chosen += rng.sample(pool["feature"], rng.randint(1, 3))
        chosen += rng.sample(pool["improvement"], rng.randint(0, 2))
        chosen += rng.sample(pool["fix"], rng.randint(0, 4))
        chosen += pool["security"] if rng.random() < 0.15 else []
        if shape == "major":
            chosen += rng.sample(pool["breaking"], rng.randint(1, 2))
    kept = set(chosen)
    unused = [c for c in pool["feature"] if c not in kept]
    reverted = rng.choice(unused) if rng.random() < 0.3 and unused else None
    previous, version = next_version(rng, {c.kind for c in chosen})

    style = rng.choice(["conventional", "conventional", "plain", "labels"])
    scopes = sorted({c.scope for c in changes})
    pr = rng.randint(40, 900)
    entries = [(c, "") for c in chosen] + [(None, "internal") for _ in range(rng.randint(1, 5))]
    if reverted:
        entries.append((reverted, "reverted"))
    rng.shuffle(entries)
    lines = []
    for change, role in entries:
        pr += rng.randint(1, 6)
        if change is None:
            lines.append(f"- {internal_line(rng, style, deps, scopes, version)}")
            continue
        title = commit_line(change, style, pr)
        lines.append(f"- {title}")
        if change.body and (change.kind == "breaking" or rng.random() < 0.6):
            lines.append(f"  {change.body}")
        if role == "reverted":
            pr += rng.randint(1, 3)
            lines.append(f"- Revert \"{title}\" (#{pr})")
            lines.append(f"  This reverts the change; it broke {rng.choice(scopes)} and will return in a later release.")
    hashes = rng.random() < 0.35
    if hashes:
        lines = [f"- {rng.getrandbits(28):07x} {line[2:]}" if line.startswith("- ") else line for line in lines]
    source = "\n".join([f"Project: {project} ({description})", f"Release: {version} (previous: {previous})", "",
                        f"Merged since {previous}:"] + lines)
    in_commit_order = [c for c, role in entries if c is not None and role == ""]
    by_kind = {kind: [c for c in in_commit_order if c.kind == kind] for kind in SECTIONS}
    opening = summary(rng, project, version, by_kind)
    alt = rng.random() < 0.5
    reference = notes(project, version, opening, by_kind, alt=alt)
    check_example(source, reference, chosen, reverted)
    # The same notes in the other wording, for calibrate.py (never written to the data files).
    other_opening = opening.replace("This release", f"{project} {version}", 1).replace("This is", f"{project} {version} is", 1) \
        if opening.startswith("This") else opening.replace(f"{project} {version}", "This release", 1).replace("This release is", "This is", 1)
    alternative = notes(project, version, other_opening, by_kind, alt=not alt)
    return {"project": project, "version": version, "n_changes": len(chosen), "commits": source,
            "reference": reference, "_alternative": alternative}


def check_example(source: str, reference: str, chosen: list[Change], reverted: Change | None) -> None:
    """The notes cover every kept change once, nothing reverted or internal, and no PR numbers or hashes."""
    bullets = [line[2:] for line in reference.splitlines() if line.startswith("- ")]
    covered = [c for b in bullets for c in chosen if b in (c.note, c.alt_note)]
    assert len(bullets) == len(chosen) and sorted(covered, key=id) == sorted(chosen, key=id), (bullets, chosen)
    if reverted:
        assert reverted.note not in reference and reverted.alt_note not in reference and "Revert" in source
    assert not re.search(r"#\d+|\b[0-9a-f]{7}\b|chore|deps|\bci\b", reference), reference


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def build_split(rng: random.Random, n: int, prefix: str, width: int, exclude: set[str]) -> list[dict]:
    """n examples, projects in turn (shuffled), none whose normalised commit list is in `exclude` or repeated."""
    plan = [sorted(PROJECTS)[i % len(PROJECTS)] for i in range(n)]
    rng.shuffle(plan)
    rows, seen = [], set(exclude)
    for number, project in enumerate(plan, start=1):
        while True:
            row = make_example(rng, project)
            if normalise(row["commits"]) not in seen:
                break
        seen.add(normalise(row["commits"]))
        rows.append({"id": f"{prefix}{number:0{width}d}", **row})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    golden = build_split(random.Random(f"{args.seed}:golden"), N_GOLDEN, "rn-g-", 3, set())
    golden_texts = {normalise(r["commits"]) for r in golden}
    train = build_split(random.Random(f"{args.seed}:train"), N_TRAIN, "rn-t-", 4, golden_texts)
    assert not golden_texts & {normalise(r["commits"]) for r in train}, "a golden input leaked into train"
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "golden.jsonl", golden)
    write_jsonl(args.out / "train.jsonl", train)
    for name, rows in (("golden", golden), ("train", train)):
        sections = Counter(h for r in rows for h in SECTIONS.values() if f"### {h}" in r["reference"])
        reverts = sum("Revert \"" in r["commits"] for r in rows)
        words = sorted(len(r["reference"].split()) for r in rows)
        print(f"{name}: {len(rows)} examples; projects " + ", ".join(
            f"{p} {sum(r['project'] == p for r in rows)}" for p in sorted(PROJECTS))
              + f"; reference words {words[0]}-{words[-1]} (median {words[len(words) // 2]}); with a revert {reverts}")
        print("  sections: " + ", ".join(f"{h} {sections[h]}" for h in SECTIONS.values()))


if __name__ == "__main__":
    main()
