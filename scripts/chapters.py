#!/usr/bin/env python3
"""The chain of chapters, item by item.

Every chapter's solution is the previous one plus what the chapter
declares it changes, and every starter is its solution with some
function bodies replaced by TODO stubs. This script reads Rust files as
lists of items (functions, types, constants, impl blocks and their
methods, the `//!` header), keyed by name, and compares them.

  chapters.py check [N...]   the chain, the locks and the starters (CI)
  chapters.py lock [N...]    write chapters/NN-slug/changes.lock
  chapters.py stats          lines added and removed, chapter by chapter
  chapters.py carry N        carry solution N's uncommitted change into
                             starter N and every later chapter
  chapters.py render SLUG    the chapter's exercise as Markdown diffs
  chapters.py mdbook         as an mdBook preprocessor (book/book.toml)
  chapters.py items FILE     the items of a Rust file, as the checks see them

The changes of chapter N are declared in chapters/NN-slug/changes.txt:

  src/FILE.rs: ITEM ITEM ...   these items differ from solution N-1
  src/FILE.rs: new             a file solution N-1 does not have
  src/FILE.rs: removed         a file solution N no longer has

An ITEM is `header` (the //! lines), a function, type, constant or
static by name, a method as `Type::name`, a trait impl as
`impl Trait for Type`, or `mod name`. `use` lines may differ freely:
they follow from the rest.

Items like `run`, `Options` or `header` change in almost every chapter,
so a name alone cannot tell a fix carried from a fix forgotten. What
chapter N does to each item it declares changed is therefore locked in
chapters/NN-slug/changes.lock, written by `chapters.py lock N`:

  == src/FILE.rs: ITEM         an item changed in a file both solutions have
  @@                           a hunk: consecutive lines that differ
  -LINE                        a line of solution N-1 that N does not have
  +LINE                        a line of solution N that N-1 does not have
  == src/FILE.rs: ITEM         an item solution N-1 does not have ...
  added                        ... (its text is the chapter's own)
  == src/FILE.rs: ITEM         an item solution N no longer has
  removed

The hunks are the diff of the item's text (trailing spaces and blank
lines around it aside) with no context and no line numbers; entries are
sorted by file and item. `check` makes them again from the solutions
and fails on any difference. A change made to an item in solution N-1
and not carried into N shows as a new or altered hunk, and so does a
change made in N alone. The same change made in both outside the hunks
(a carried fix) only moves the hunks, and the lock holds no line
numbers: carrying needs no new lock. Changing what a chapter does
needs one (`lock N`), and the lock's diff shows the reviewer the change.
What the lock cannot see is a change to N-1 that leaves every hunk's
lines as they were, such as moving a line that chapter N deletes anyway.
"""

import difflib
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# --- reading Rust -----------------------------------------------------

def code_mask(text):
    """For each character of `text`: True where it is code, False inside
    comments, strings and character literals (whose braces do not count).
    """
    mask = [True] * len(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            mask[i:j] = [False] * (j - i)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            mask[i:j] = [False] * (j - i)
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (
            i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            j = n if end < 0 else end + 1 + len(hashes)
            mask[i:j] = [False] * (j - i)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            mask[i:j] = [False] * (j - i)
            i = j
        elif c == "'":
            # A character literal ('{', '\n', '\u{7f}'), or a lifetime.
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                j = i + len(m.group(0))
                mask[i:j] = [False] * (j - i)
                i = j
            else:
                i += 1
        else:
            i += 1
    return mask


ITEM_NAME = [
    (r"impl(?:<[^>]*>)?\s+(\S+(?:<[^>]*>)?)\s+for\s+(\w+)",
     lambda m: f"impl {m.group(1)} for {m.group(2)}"),
    (r"impl(?:<[^>]*>)?\s+(\w+)", lambda m: f"impl {m.group(1)}"),
    (r"(?:pub(?:\([^)]*\))?\s+)?(?:const\s+|unsafe\s+|extern\s+\"C\"\s+)*"
     r"fn\s+(\w+)", lambda m: m.group(1)),
    (r"(?:pub(?:\([^)]*\))?\s+)?(?:struct|enum|union|trait|type)\s+(\w+)",
     lambda m: m.group(1)),
    (r"(?:pub(?:\([^)]*\))?\s+)?(?:const|static)\s+(?:mut\s+)?(\w+)",
     lambda m: m.group(1)),
    (r"(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)", lambda m: f"mod {m.group(1)}"),
    (r"macro_rules!\s+(\w+)", lambda m: f"macro {m.group(1)}"),
    (r"(?:pub(?:\([^)]*\))?\s+)?use\s", lambda m: "imports"),
]

ANCHOR = re.compile(r"^\s*// ANCHOR(_END)?: \w+\s*$")


def item_key(code):
    """The name of the item whose code (attributes and comments removed)
    starts `code`."""
    for pattern, name in ITEM_NAME:
        m = re.match(pattern, code)
        if m:
            return name(m)
    return None


def split_items(text, prefix=""):
    """The items of a Rust file (or of an impl block's body), as
    (key, text) pairs in order. Comments and attributes before an item
    belong to it; anchor lines belong to nobody."""
    lines = text.split("\n")
    text = "\n".join(line for line in lines if not ANCHOR.match(line))
    mask = code_mask(text)
    items = []
    header = []
    # The //! header: the file's first lines.
    rest = text
    while rest.startswith("//!"):
        line, _, rest = rest.partition("\n")
        header.append(line)
    if header:
        items.append(("header", "\n".join(header)))
    offset = len(text) - len(rest)
    start, depth, i = offset, 0, offset
    while i < len(text):
        c = text[i]
        if mask[i]:
            if c in "{([":
                depth += 1
            elif c in "})]":
                depth -= 1
                if depth == 0 and c == "}":
                    # An item with a body ends here, unless a `;` follows
                    # on the line (a `let`-like static, a macro call).
                    tail = text[i + 1:].split("\n", 1)[0].strip()
                    if not tail.startswith(";") and not tail.startswith(","):
                        items.extend(make_item(text[start:i + 1], prefix))
                        start = i + 1
            elif c == ";" and depth == 0:
                items.extend(make_item(text[start:i + 1], prefix))
                start = i + 1
        i += 1
    leftover = text[start:].strip()
    if leftover:
        items.append((prefix + "trailing", leftover))
    return items


def make_item(chunk, prefix):
    chunk = chunk.strip("\n")
    mask = code_mask(chunk)
    # Skip comments and attributes to find the item's own first word.
    code = "".join(c if m else " " for c, m in zip(chunk, mask))
    code = re.sub(r"#!?\[[^\]]*\]", lambda m: " " * len(m.group(0)), code)
    body = code.strip()
    key = item_key(body)
    if key is None:
        return [(prefix + "?" + body[:40], chunk)]
    if key.startswith("impl ") and " for " not in key:
        # An inherent impl: its methods are items of their own.
        ty = key[len("impl "):]
        open_at = code.index("{")
        inner = chunk[open_at + 1:chunk.rstrip().rfind("}")]
        return [
            (k if "::" in k else f"{ty}::{k}", t)
            for k, t in split_items(inner, prefix=f"{ty}::")
        ]
    if key == "imports":
        return [("imports", chunk)]
    return [(prefix + key if not key.startswith(prefix) else key, chunk)]


def items_of(path):
    """The items of a file, as a dict key -> text; `use` items are
    joined under "imports"."""
    result = {}
    for key, text in split_items(Path(path).read_text()):
        if key in result:
            result[key] += "\n" + text
        else:
            result[key] = text
    return result


def normalize(text):
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


# --- the chapters -----------------------------------------------------

def chapters():
    """(number, slug) of every chapter, in order."""
    found = []
    for d in sorted((ROOT / "chapters").iterdir()):
        m = re.match(r"(\d+)-", d.name)
        if d.is_dir() and m:
            found.append((int(m.group(1)), d.name))
    return found


def rust_files(src):
    return sorted(
        str(p.relative_to(src.parent)) for p in src.rglob("*.rs")
    )


def declared_changes(slug):
    """What chapter `slug` declares: {file: set of items or "new"/"removed"}."""
    path = ROOT / "chapters" / slug / "changes.txt"
    declared = {}
    if not path.exists():
        return declared, path
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        file, sep, items = line.partition(":")
        if not sep:
            raise SystemExit(f"{path}:{number}: expected FILE: ITEMS")
        names = set(re.findall(r"impl \S+ for \w+|mod \w+|\S+", items))
        declared.setdefault(file.strip(), set()).update(names)
    return declared, path


def check_chain(previous, current, errors):
    """Solution `current` is solution `previous` plus what its chapter
    declares, and nothing else."""
    before = ROOT / "solutions" / previous / "src"
    after = ROOT / "solutions" / current / "src"
    declared, declared_at = declared_changes(current)
    where = declared_at.relative_to(ROOT)
    files = sorted(set(rust_files(before)) | set(rust_files(after)))
    seen = set()
    for file in files:
        old, new = before.parent / file, after.parent / file
        said = declared.get(file, set())
        seen.add(file)
        if not old.exists() or not new.exists():
            kind = "new" if new.exists() else "removed"
            if kind not in said:
                errors.append(
                    f"solutions/{current}/{file}: {kind} in this chapter, "
                    f"but {where} does not say `{file}: {kind}`"
                )
            continue
        if "new" in said or "removed" in said:
            errors.append(f"{where}: {file} is neither new nor removed")
            continue
        a, b = items_of(old), items_of(new)
        changed = {
            key for key in set(a) | set(b)
            if key != "imports"
            and normalize(a.get(key, "")) != normalize(b.get(key, ""))
        }
        for key in sorted(changed - said):
            what = ("added" if key not in a else
                    "removed" if key not in b else "changed")
            errors.append(
                f"solutions/{current}/{file}: `{key}` is {what} since "
                f"solutions/{previous}, and {where} does not declare it "
                f"(carry a fix to every later chapter, or declare it)"
            )
        for key in sorted(said - changed):
            errors.append(
                f"{where}: declares `{key}` in {file}, which is the same "
                f"as in solutions/{previous}"
            )
    for file in sorted(set(declared) - seen):
        errors.append(f"{where}: {file} is in neither solution")


# --- the lock: what each chapter does to each item ---------------------

def item_diff(old, new):
    """What turns item text `old` into `new`, as lock lines: each hunk is
    an `@@` line, then the lines removed (-), then the lines added (+).
    No context and no line numbers: a change made to both texts outside
    the hunks leaves them as they are."""
    a, b = normalize(old).split("\n"), normalize(new).split("\n")
    # autojunk off: a line as common as `}` must still be matched.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    lines = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            lines.append("@@")
            lines.extend("-" + line for line in a[i1:i2])
            lines.extend("+" + line for line in b[j1:j2])
    return lines


def lock_entries(previous, current):
    """What chapter `current` does to each item it declares changed in a
    file that solution `previous` has too: {(file, item): lines}."""
    before = ROOT / "solutions" / previous
    after = ROOT / "solutions" / current
    declared, _ = declared_changes(current)
    entries = {}
    for file, said in declared.items():
        old, new = before / file, after / file
        if not old.exists() or not new.exists():
            continue  # a new file is the chapter's own; nothing to lock
        a, b = items_of(old), items_of(new)
        for key in said - {"new", "removed"}:
            if key in a and key in b:
                lines = item_diff(a[key], b[key])
            elif key in b:
                lines = ["added"]
            elif key in a:
                lines = ["removed"]
            else:
                continue  # check_chain reports it
            if lines:  # an item the same in both: check_chain reports it
                entries[(file, key)] = lines
    return entries


def lock_path(slug):
    return ROOT / "chapters" / slug / "changes.lock"


def number_of(slug):
    return int(slug.split("-", 1)[0])


def lock_text(number, previous, entries):
    """The lock file: a header, then the entries sorted by file and item."""
    out = [
        f"# What chapter {number} does to each item it changes in a file of "
        f"solution {number_of(previous)}:",
        "# the lines it removes (-) and adds (+), hunk by hunk (@@), without",
        "# context; `added` or `removed` for a whole item. Written by",
        f"# `python3 scripts/chapters.py lock {number}`: review its diff.",
    ]
    for file, key in sorted(entries):
        out.append("")
        out.append(f"== {file}: {key}")
        out.extend(entries[(file, key)])
    return "\n".join(out) + "\n"


def read_lock(path):
    """A lock file as {(file, item): lines}: comments and blank lines
    aside, every line belongs to the last `== FILE: ITEM` line."""
    entries, lines = {}, None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("== "):
            file, sep, key = line[3:].partition(": ")
            if not sep:
                raise SystemExit(f"{path}:{number}: expected == FILE: ITEM")
            lines = entries[(file, key)] = []
        elif line.startswith("#") or not line:
            continue
        elif lines is None:
            raise SystemExit(f"{path}:{number}: a line before any entry")
        else:
            lines.append(line)
    return entries


def differences(locked, actual, limit=10):
    """The lines only in the lock's entry and only in the actual one, at
    most `limit` of them. `@@` lines are left out, unless they are all
    that differs (a hunk split in two, or two made one)."""
    shown = []
    matcher = difflib.SequenceMatcher(None, locked, actual, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        lines = [("lock: ", line) for line in locked[i1:i2]]
        lines += [("now:  ", line) for line in actual[j1:j2]]
        lines = [x for x in lines if x[1] != "@@"] or lines
        shown.extend(side + line for side, line in lines)
    if len(shown) > limit:
        shown[limit:] = [f"... and {len(shown) - limit} more lines"]
    return shown


def check_lock(number, previous, current, errors):
    """Solution `current` still changes each item of solution `previous`
    the way the chapter's lock says."""
    path = lock_path(current)
    where = path.relative_to(ROOT)
    if not path.exists():
        errors.append(
            f"{where} is missing: write it with "
            f"`python3 scripts/chapters.py lock {number}` and review it"
        )
        return
    locked = read_lock(path)
    actual = lock_entries(previous, current)
    before = number_of(previous)
    for file, key in sorted(set(locked) | set(actual)):
        was = locked.get((file, key), ["(not in the lock)"])
        now = actual.get((file, key), ["(no declared change)"])
        if was == now:
            continue
        shown = "\n".join("      " + line for line in differences(was, now))
        errors.append(
            f"chapter {number}: `{key}` in {file} no longer changes from "
            f"solutions/{previous} to solutions/{current} as {where} says "
            f"(-: only in solution {before}, +: only in solution "
            f"{number}):\n{shown}\n"
            f"    Either `{key}` changed in solutions/{previous} and the "
            f"change was not carried into solutions/{current}: carry it "
            f"with `python3 scripts/chapters.py carry {before}` (a fix "
            f"belongs in the earliest solution with the code);\n"
            f"    or chapter {number} changed what it does to `{key}`, on "
            f"purpose: re-lock with `python3 scripts/chapters.py lock "
            f"{number}`, and review the lock's diff in the commit."
        )


def lock(only):
    """Write the lock of each chapter in `only` (default: every chapter
    but the first), and say which entries it changed."""
    unknown = only - {number for number, _ in chapters()}
    if unknown:
        print(f"lock: no chapter {min(unknown)}", file=sys.stderr)
        return 2
    previous = None
    for number, slug in chapters():
        if previous and (not only or number in only):
            path = lock_path(slug)
            entries = lock_entries(previous, slug)
            print(f"lock: {path.relative_to(ROOT)}: {len(entries)} items")
            if path.exists():
                # What a reviewer of the commit should look at.
                old = read_lock(path)
                for file, key in sorted(set(old) | set(entries)):
                    if (file, key) not in entries:
                        print(f"lock:   dropped `{key}` in {file}")
                    elif (file, key) not in old:
                        print(f"lock:   new `{key}` in {file}")
                    elif old[(file, key)] != entries[(file, key)]:
                        print(f"lock:   changed `{key}` in {file}")
            path.write_text(lock_text(number, previous, entries))
        elif number in only:
            print(f"lock: chapter {number} has no previous solution")
        previous = slug
    return 0


def check_starter(number, slug, errors):
    """The starter is its solution with TODO stubs in some bodies, and
    nothing else changed."""
    solution = ROOT / "solutions" / slug / "src"
    starter = ROOT / "chapters" / slug / "src"
    note = f"TODO(ch{number})"
    files = sorted(set(rust_files(solution)) | set(rust_files(starter)))
    for file in files:
        a_path, b_path = solution.parent / file, starter.parent / file
        if not a_path.exists() or not b_path.exists():
            errors.append(
                f"chapters/{slug}/{file}: in only one of starter and solution"
            )
            continue
        a, b = items_of(a_path), items_of(b_path)
        for key in sorted(set(a) | set(b)):
            if key == "imports":
                continue
            if normalize(a.get(key, "")) == normalize(b.get(key, "")):
                continue
            place = f"chapters/{slug}/{file}: `{key}`"
            if key not in a or key not in b:
                errors.append(f"{place} is in only one of starter and solution")
                continue
            stub = b[key]
            if note not in stub or "todo!(" not in stub:
                errors.append(
                    f"{place} differs from the solution without a {note} "
                    f"note and a todo!() (a fix made in only one of them?)"
                )
            elif head(a[key]) != head(stub):
                errors.append(
                    f"{place}: the signature or doc differs from the "
                    f"solution's; only the body is the exercise"
                )


def head(item):
    """An item's text up to the opening brace of its body."""
    mask = code_mask(item)
    for i, c in enumerate(item):
        if mask[i] and c == "{":
            return normalize(item[:i])
    return normalize(item)


def diff_lines(a_dir, b_dir):
    """Lines added and removed from a_dir/src to b_dir/src."""
    added = removed = 0
    a_src, b_src = a_dir / "src", b_dir / "src"
    for file in sorted(set(rust_files(a_src)) | set(rust_files(b_src))):
        a = (a_dir / file).read_text().splitlines() if (a_dir / file).exists() else []
        b = (b_dir / file).read_text().splitlines() if (b_dir / file).exists() else []
        for line in difflib.unified_diff(a, b, lineterm="", n=0):
            if line.startswith("+") and not line.startswith("+++"):
                added += 1
            elif line.startswith("-") and not line.startswith("---"):
                removed += 1
    return added, removed


def stats():
    print(f"{'chapter':<22} {'from the last solution':>24} "
          f"{'the exercise':>14}")
    previous = None
    for number, slug in chapters():
        sol = ROOT / "solutions" / slug
        chain = "(the first)"
        if previous:
            a, r = diff_lines(ROOT / "solutions" / previous, sol)
            chain = f"+{a} -{r}"
        a, r = diff_lines(ROOT / "chapters" / slug, sol)
        print(f"{slug:<22} {chain:>24} {f'+{a} -{r}':>14}")
        previous = slug


def check(only):
    errors = []
    previous = None
    for number, slug in chapters():
        if not only or number in only:
            if previous:
                check_chain(previous, slug, errors)
                check_lock(number, previous, slug, errors)
            check_starter(number, slug, errors)
        previous = slug
    for error in errors:
        print(f"check-chapters: {error}", file=sys.stderr)
    return 1 if errors else 0


def carry(number):
    """Apply the uncommitted change of solution `number` (git diff HEAD)
    to its starter and to every later solution and starter, with patch:
    a fix is made once, then carried. Prints what did not apply."""
    import subprocess
    slugs = dict(chapters())
    slug = slugs[number]
    diff = subprocess.run(
        ["git", "diff", "HEAD", "--", f"solutions/{slug}/src"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout
    if not diff:
        print(f"carry: solutions/{slug} has no uncommitted change")
        return 1
    failed = 0
    targets = [f"chapters/{slug}"] + [
        f"{kind}/{s}" for n, s in chapters() if n > number
        for kind in ("solutions", "chapters")
    ]
    for target in targets:
        # a/solutions/NN-slug/src/x.rs: three components to strip. A dry
        # run first: a copy takes the whole change, or none of it.
        command = ["patch", "-p3", "-N", "--no-backup-if-mismatch",
                   "-r", "-", "-d", str(ROOT / target)]
        trial = subprocess.run(command + ["--dry-run"], input=diff,
                               capture_output=True, text=True)
        if trial.returncode == 0:
            subprocess.run(command, input=diff, capture_output=True,
                           text=True, check=True)
            print(f"carry: {target}: carried")
        elif subprocess.run(command + ["--dry-run", "-R"], input=diff,
                            capture_output=True, text=True).returncode == 0:
            # Undoing it would work: the copy has the change already (a
            # carry to 4 of a fix that `carry 3` took there before).
            print(f"carry: {target}: has it already")
        else:
            failed += 1
            print(f"carry: {target}: NOT carried, make the change by hand:")
            print(trial.stdout.strip())
    return 1 if failed else 0


# --- the book ---------------------------------------------------------

def render(slug):
    """The exercise of chapter `slug` as Markdown: what the learner writes,
    file by file, as diffs from the starter to the solution."""
    starter = ROOT / "chapters" / slug
    solution = ROOT / "solutions" / slug
    out = []
    a_total, r_total = diff_lines(starter, solution)
    out.append(
        f"From `chapters/{slug}` (the starter) to `solutions/{slug}`: "
        f"{a_total} lines in, {r_total} out. Made from the sources when the "
        f"book is built."
    )
    for file in rust_files(solution / "src"):
        a = (starter / file).read_text().splitlines()
        b = (solution / file).read_text().splitlines()
        if a == b:
            continue
        diff = list(difflib.unified_diff(
            a, b, f"chapters/{slug}/{file}", f"solutions/{slug}/{file}",
            lineterm="", n=3,
        ))
        out.append(f"\n## `{file}`\n\n```diff\n" + "\n".join(diff) + "\n```")
    return "\n".join(out) + "\n"


DIRECTIVE = re.compile(r"\{\{#tincan-exercise ([\w-]+)\}\}")


def mdbook():
    """mdBook preprocessor: replace {{#tincan-exercise SLUG}} with the
    chapter's rendered exercise."""
    if len(sys.argv) > 2 and sys.argv[2] == "supports":
        return 0
    _context, book = json.load(sys.stdin)

    def visit(items):
        for item in items:
            chapter = item.get("Chapter") if isinstance(item, dict) else None
            if not chapter:
                continue
            chapter["content"] = DIRECTIVE.sub(
                lambda m: render(m.group(1)), chapter["content"]
            )
            visit(chapter.get("sub_items", []))

    visit(book.get("sections") or book.get("items", []))
    json.dump(book, sys.stdout)
    return 0


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else "check"
    if command == "check":
        return check({int(n) for n in sys.argv[2:]})
    if command == "lock":
        return lock({int(n) for n in sys.argv[2:]})
    if command == "stats":
        stats()
        return 0
    if command == "carry":
        return carry(int(sys.argv[2]))
    if command == "render":
        sys.stdout.write(render(sys.argv[2]))
        return 0
    if command == "mdbook":
        return mdbook()
    if command == "items":
        for key, text in split_items(Path(sys.argv[2]).read_text()):
            print(f"{key}: {len(text.splitlines())} lines")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
