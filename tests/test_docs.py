"""The README and docs/: every relative link resolves and every command they show parses.

Links: every relative link or image of README.md and docs/**/*.md names an existing file, and a
`#anchor` names a heading of the page it points to (GitHub's heading slugs).

Commands: every `psrjax <verb> ...` in a shell code block (```bash, ```sh or a plain ```), and
in an inline code span, names an existing verb and only flags that verb's argument parser (the
CLI's own `add_arguments`, plus for `synthesize` the options of the system the workdir holds)
accepts; `--config configs/X.py:ARGS` names an existing config whose `get_config(ARGS)` accepts
ARGS (a prepared dataset named by `data=` is not read); `--config.a.b=V` overrides (and the
benchmarks' `--set a.b=V`) name fields of that config. A workdir that no documented `psrjax
train` writes is checked against every config and system. `python X.py` names an existing
script. Nothing is compiled or trained.
"""
from __future__ import annotations

import argparse
import ast
import bisect
import collections
import contextlib
import dataclasses
import functools
import importlib
import os
import re
import shlex
import unicodedata
from pathlib import Path
from unittest import mock

import pytest

from psrjax import config_args
from psrjax import config_utils
from psrjax.commands import available_verbs

REPO = Path(__file__).resolve().parents[1]
# The README's test command: CI (.ci/run) runs exactly this.
TEST_COMMAND = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && "
                "python -m pytest -q -n 2")


def doc_files() -> list[Path]:
  return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _name(path: Path) -> str:
  return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


# ----------------------------------------------------------------------------- markdown
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
SHELL_LANGS = ("", "bash", "sh", "shell", "console")


@dataclasses.dataclass
class Block:
  lang: str
  line: int          # 1-based line of the first line inside the fence
  lines: list[str]


def split_markdown(text: str) -> tuple[list[Block], list[tuple[int, str]]]:
  """(the fenced code blocks, the other lines as (1-based number, text))."""
  blocks, prose, fence, block = [], [], None, None
  for number, line in enumerate(text.splitlines(), 1):
    match = FENCE.match(line)
    if fence is None and match:
      fence, block = match.group(1), Block(match.group(2).lower(), number + 1, [])
    elif fence is not None and line.strip().startswith(fence[0] * len(fence)) and \
        not line.strip().strip(fence[0]):
      blocks.append(block)
      fence = None
    elif fence is not None:
      block.lines.append(line)
    else:
      prose.append((number, line))
  return blocks, prose


INLINE_CODE = re.compile(r"(`+)((?:(?!\n\s*\n).)+?)\1", re.S)   # within a paragraph


def prose_text(prose: list[tuple[int, str]]) -> tuple[str, list[int]]:
  """The prose lines joined by newlines, and the line number of each character offset's line
  (as a list of the offsets where lines start)."""
  starts, parts, offset = [], [], 0
  for _, line in prose:
    starts.append(offset)
    parts.append(line)
    offset += len(line) + 1
  return "\n".join(parts), starts


def _line_of(offset: int, starts: list[int], prose) -> int:
  return prose[max(bisect.bisect_right(starts, offset) - 1, 0)][0]


def slug(heading: str) -> str:
  """GitHub's anchor of a heading (github-slugger): lower case; letters, marks, decimal digits,
  `_`, `-` and spaces kept, spaces as dashes."""
  text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # links and images: their text
  text = text.replace("`", "").replace("*", "").strip().lower()
  keep = [c for c in text if c in " -" or unicodedata.category(c)[0] in "LM"
          or unicodedata.category(c) in ("Nd", "Nl", "Pc")]
  return "".join(keep).replace(" ", "-")


def anchors(text: str) -> set[str]:
  """The anchors of a page's headings, duplicates numbered as GitHub numbers them."""
  _, prose = split_markdown(text)
  seen, out = collections.Counter(), set()
  for _, line in prose:
    match = re.match(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
    if not match:
      continue
    base = slug(match.group(2))
    out.add(base if not seen[base] else f"{base}-{seen[base]}")
    seen[base] += 1
  return out


LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML_LINK = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def link_problems(path: Path, text: str | None = None) -> list[str]:
  """Relative links and images of the page `path` that name no file, or no heading."""
  text = path.read_text(encoding="utf-8") if text is None else text
  _, prose = split_markdown(text)
  body, starts = prose_text(prose)
  body_no_code = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), body)
  problems = []
  for regex in (LINK, REF_LINK, HTML_LINK):
    for match in regex.finditer(body_no_code):
      target = match.group(1)
      where = f"{_name(path)}:{_line_of(match.start(), starts, prose)}"
      if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
        continue    # http:, https:, mailto: ...
      file_part, _, anchor = target.partition("#")
      dest = (path.parent / file_part).resolve() if file_part else path
      if file_part and not dest.exists():
        problems.append(f"{where}: link {target!r}: no file {_name(dest)}")
        continue
      if anchor and dest.suffix == ".md" and anchor not in anchors(
          dest.read_text("utf-8") if file_part else text):
        problems.append(f"{where}: link {target!r}: {_name(dest)} has no heading #{anchor}")
  return problems


# ----------------------------------------------------------------------------- commands
@dataclasses.dataclass(frozen=True)
class Command:
  where: str               # "README.md:12"
  words: tuple[str, ...]   # env assignments removed: ("psrjax", "train", ...)
  inline: bool = False     # from an inline code span (may leave required options out)


SEPARATORS = {"&&", "||", ";", "|", "&"}


def split_shell(line: str) -> list[list[str]]:
  """The simple commands of a shell line (split at && || ; |), comments dropped, each without
  its leading VAR=value assignments."""
  lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
  lexer.whitespace_split = True
  commands, words = [], []
  for token in lexer:
    if token in SEPARATORS:
      commands.append(words)
      words = []
    else:
      words.append(token)
  commands.append(words)
  out = []
  for words in commands:
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
      words = words[1:]
    if words:
      out.append(words)
  return out


def block_commands(block: Block, where: str) -> list[Command]:
  """The commands of a shell code block; in a transcript (lines starting with `$ `) only
  those lines."""
  transcript = any(l.lstrip().startswith("$ ") for l in block.lines)
  joined, number, out = "", block.line, []
  for i, line in enumerate(block.lines):
    if not joined:
      number = block.line + i
    if line.rstrip().endswith("\\"):
      joined += line.rstrip()[:-1] + " "
      continue
    line, joined = joined + line, ""
    stripped = line.strip()
    if transcript:
      if not stripped.startswith("$ "):
        continue
      stripped = stripped[2:]
    try:
      commands = split_shell(stripped)
    except ValueError as e:   # unbalanced quotes: prose, unless it starts like a command
      if re.match(r"^(psrjax|python3?) ", stripped):
        out.append(Command(f"{where}:{number}", ("<unparsable>", stripped, str(e))))
      continue
    out += [Command(f"{where}:{number}", tuple(words)) for words in commands]
  return out


def page_commands(path: Path, text: str | None = None) -> list[Command]:
  """Every command of a page's shell blocks, and every inline `psrjax <verb> ...` or
  `python X.py ...` span."""
  text = path.read_text(encoding="utf-8") if text is None else text
  blocks, prose = split_markdown(text)
  out = []
  for block in blocks:
    if block.lang in SHELL_LANGS:
      out += block_commands(block, _name(path))
  body, starts = prose_text(prose)
  for match in INLINE_CODE.finditer(body):
    span = " ".join(match.group(2).split())
    if not re.match(r"^(psrjax [a-z]|python3? \S+\.py)", span):
      continue
    where = f"{_name(path)}:{_line_of(match.start(), starts, prose)}"
    try:
      words = shlex.split(span)
    except ValueError as e:
      out.append(Command(where, ("<unparsable>", span, str(e)), inline=True))
      continue
    out.append(Command(where, tuple(words), inline=True))
  return out


def all_commands(files=None) -> list[Command]:
  return [c for path in (files or doc_files()) for c in page_commands(path)]


# --------------------------------------------------------------------- configs and systems
def _stand_in_dataset(path, *_, **__):
  return str(path)


def _stand_in_multiview(path, *_, **__):
  return str(path), 3


@functools.lru_cache(maxsize=None)
def load_config(spec: str):
  """`get_config(ARGS)` of `configs/X.py:ARGS` (relative to the repository); a `data=` dataset
  is taken as given, not read. Raises ValueError for a missing file or a rejected argument."""
  path, colon, arg = spec.partition(":")
  full = path if os.path.isabs(path) else str(REPO / path)
  patches = [mock.patch.object(config_args, name, stand_in)
             for name, stand_in in (("prepared_dataset", _stand_in_dataset),
                                    ("multiview_dataset", _stand_in_multiview))
             if hasattr(config_args, name)]
  with contextlib.ExitStack() as stack:
    for patch in patches:
      stack.enter_context(patch)
    return config_utils.load_config_file(full + (colon + arg if colon else ""))


def config_names() -> list[str]:
  return sorted(p.stem for p in (REPO / "configs").glob("*.py") if not p.stem.startswith("_"))


@functools.lru_cache(maxsize=None)
def system_names() -> tuple[str, ...]:
  """The modules of psrjax/systems that define `make_system` (read from their source)."""
  here = REPO / "psrjax" / "systems"
  names = []
  for path in sorted(here.glob("*.py")):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if any(isinstance(n, ast.FunctionDef) and n.name == "make_system" for n in tree.body):
      names.append(path.stem)
  return tuple(names)


@functools.lru_cache(maxsize=None)
def synthesis_options(system: str) -> tuple:
  """The `psrjax synthesize` options of a system: the `synthesis_options` of the system
  classes its module holds (class attributes: nothing is built)."""
  module = importlib.import_module(f"psrjax.systems.{system}")
  options = {}
  for value in vars(module).values():
    if isinstance(value, type):
      for option in getattr(value, "synthesis_options", ()) or ():
        if hasattr(option, "flag"):
          options[option.flag] = option
  return tuple(options.values())


def _override(config, key: str, value: str) -> str | None:
  """None if `--config.<key>=<value>` applies to (a copy of) `config`, else why not."""
  try:
    config_utils.apply_override(config.copy_and_resolve_references(), key, value)
  except ValueError as e:
    return " ".join(str(e).split())
  return None


def override_problem(configs, key: str, value: str) -> str | None:
  """None if the override applies to one of `configs`, else the first config's complaint."""
  complaints = [_override(c, key, value) for c in configs]
  return None if any(c is None for c in complaints) else complaints[0]


def every_config():
  return [load_config(f"configs/{n}.py") for n in config_names()]


# ----------------------------------------------------------------------------- checking
class _Rejected(Exception):
  pass


class _Parser(argparse.ArgumentParser):
  def error(self, message):
    raise _Rejected(message)


PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$|\.\.\.|^<.*>$")


def verb_parser(verb: str, options=()) -> argparse.ArgumentParser:
  """The parser `psrjax <verb>` builds (psrjax/cli.py), required options not enforced, plus
  the synthesis `options` given."""
  command = importlib.import_module(f"psrjax.commands.{verb.replace('-', '_')}")
  parser = _Parser(prog=f"psrjax {verb}", add_help=False)
  command.add_arguments(parser)
  for option in options:
    if option.flag not in parser._option_string_actions:  # pylint: disable=protected-access
      parser.add_argument(option.flag, dest=option.name, type=option.type,
                          default=option.default, choices=option.choices)
  parser.add_argument("-h", "--help", action="store_true")
  for action in parser._actions:  # pylint: disable=protected-access
    action.required = False
  return parser


def _with_placeholders_filled(parser, words: list[str]) -> list[str]:
  """`words` with placeholder values (DIR, N, ...) of typed or choice options replaced by
  their default, so that a documented `--seed N` is not taken for a bad value."""
  actions = parser._option_string_actions  # pylint: disable=protected-access
  out = list(words)
  for i, word in enumerate(out[:-1]):
    action = actions.get(word.split("=")[0])
    if action is None or action.nargs == 0 or "=" in word:
      continue
    if PLACEHOLDER.search(out[i + 1]) and (action.type not in (None, str) or action.choices):
      out[i + 1] = str(action.default if action.default is not None else
                       (action.choices[0] if action.choices else 1))
  return out


def _value(words, flag):
  """The value of `flag` in `words` (`--flag V` or `--flag=V`), or None."""
  for i, word in enumerate(words):
    if word == flag and i + 1 < len(words):
      return words[i + 1]
    if word.startswith(flag + "="):
      return word[len(flag) + 1:]
  return None


ARGUMENT_ERRORS = ("unknown config argument", "needs a value", "expects")


def config_problem(spec: str) -> str | None:
  """None if `--config SPEC` loads, else why not."""
  path, _, arg = spec.partition(":")
  if not (REPO / path).is_file() and not os.path.isfile(path):
    return f"config file {path} does not exist"
  try:
    load_config(spec)
  except Exception as e:  # pylint: disable=broad-except  # whatever get_config raises is reported
    message = " ".join(str(e).split())
    items = [i for i in arg.split(",") if i.strip()]
    rest = [i for i in items if not i.strip().startswith("data=")]
    if len(rest) < len(items) and not any(m in message for m in ARGUMENT_ERRORS):
      # The arguments parsed and the stand-in dataset was read all the same (its check moved):
      # the config without data= must load.
      return config_problem(path + (":" + ",".join(rest) if rest else ""))
    return f"--config {spec}: {message}"
  return None


class Checker:
  """Checks commands; knows which system each documented workdir holds."""

  def __init__(self, commands):
    self.workdirs = collections.defaultdict(set)   # workdir -> {config spec}
    for command in commands:
      words = command.words
      if words[:2] == ("psrjax", "train"):
        spec, workdir = _value(words, "--config"), _value(words, "--workdir")
        if spec and workdir and config_problem(spec) is None:
          self.workdirs[workdir].add(spec)

  def _configs_of_workdir(self, workdir):
    specs = self.workdirs.get(workdir)
    return [load_config(s) for s in sorted(specs)] if specs else every_config()

  def problems(self, command: Command) -> list[str]:
    words = list(command.words)
    if words[0] == "<unparsable>":
      return [f"{command.where}: cannot split {words[1]!r}: {words[2]}"]
    if words[0] == "psrjax":
      return [f"{command.where}: `{shlex.join(words)}`: {p}" for p in self.psrjax(words[1:])]
    if re.match(r"^python(3(\.\d+)?)?$", words[0]):
      return [f"{command.where}: `{shlex.join(words)}`: {p}" for p in self.python(words[1:])]
    if words[0] == "sbatch" or words[0].startswith(("launch/", "benchmarks/", "./")):
      script = words[1] if words[0] == "sbatch" else words[0]
      if not (REPO / script).exists():
        return [f"{command.where}: `{shlex.join(words)}`: no file {script}"]
    return []   # pip, git, mkdir, tensorboard, ...: not psrjax's

  def python(self, words) -> list[str]:
    if not words or words[0] == "-m" or words[0] == "-c":
      return []
    script, rest = words[0], words[1:]
    if not (REPO / script).is_file():
      return [f"no script {script}"]
    spec = _value(rest, "--config")
    if not spec or ".py" not in spec:
      return []
    problem = config_problem(spec)
    if problem:
      return [problem]
    config, out = load_config(spec), []
    for i, word in enumerate(rest):
      pair = None
      if word.startswith(config_utils.OVERRIDE_PREFIX):
        pair = word[len(config_utils.OVERRIDE_PREFIX):].partition("=")[::2]
      elif word == "--set" and i + 1 < len(rest):
        pair = rest[i + 1].partition("=")[::2]
      if pair and (complaint := _override(config, *pair)):
        out.append(complaint)
    return out

  def psrjax(self, words) -> list[str]:
    if not words or words[0].startswith("-"):
      return []
    verb, rest = words[0], words[1:]
    if verb not in available_verbs():
      return [f"unknown verb {verb!r} (verbs: {', '.join(available_verbs())})"]
    rest = [w for w in rest if w != "..."]    # an elided rest of the command
    try:
      overrides, rest = config_utils.split_overrides(rest)
    except ValueError as e:
      return [str(e)]
    workdir = _value(rest, "--workdir")
    options = ()
    if verb == "synthesize":
      systems = ({load_config(s).system for s in self.workdirs[workdir]}
                 if workdir in self.workdirs else set(system_names()))
      options = tuple(o for s in sorted(systems) for o in synthesis_options(s))
    parser = verb_parser(verb, options)
    out = []
    try:
      _, unknown = parser.parse_known_args(_with_placeholders_filled(parser, rest))
    except _Rejected as e:
      return [str(e)]
    for i, item in enumerate(unknown):
      if item.startswith("-") or i == 0 or not unknown[i - 1].startswith("-"):
        out.append(f"{verb} does not accept {item!r}")   # not the value of an unknown flag
    spec = _value(rest, "--config")
    if spec:
      problem = config_problem(spec)
      if problem:
        return out + [problem]
      configs = [load_config(spec)]
    else:
      configs = self._configs_of_workdir(workdir) if overrides else []
    for key, value in overrides:
      complaint = override_problem(configs, key, value)
      if complaint:
        out.append(complaint)
    return out


# ----------------------------------------------------------------------------- tests
@functools.lru_cache(maxsize=None)
def _checker():
  return Checker(all_commands())


@pytest.mark.parametrize("page", doc_files(), ids=_name)
def test_relative_links_resolve(page):
  problems = link_problems(page)
  assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", doc_files(), ids=_name)
def test_commands_parse(page):
  checker = _checker()
  problems = [p for c in page_commands(page) for p in checker.problems(c)]
  assert not problems, "\n".join(problems)


def test_commands_are_found():
  """The extraction finds the README's commands (a parser that found none would pass)."""
  readme = page_commands(REPO / "README.md")
  psrjax = [c for c in readme if c.words[0] == "psrjax"]
  assert any(c.words[:3] == ("psrjax", "train", "--config") for c in psrjax), readme
  assert {c.words[1] for c in all_commands() if c.words[0] == "psrjax"} >= {
      "train", "eval", "synthesize", "prepare", "bench", "plan"}
  verbs_in_docs = len([c for c in all_commands() if c.words[0] == "psrjax"])
  assert verbs_in_docs > 50, verbs_in_docs


def test_readme_has_the_test_command():
  assert TEST_COMMAND in (REPO / "README.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------ the checks can fail
BAD_PAGE = """# A page

## Real videos: `psrjax prepare`

[fine](#real-videos-psrjax-prepare) [gone](#no-such-heading) [missing](no/such/file.md)
[readme](README.md#quick-start) ![img](nowhere.png) <img src="nowhere.svg">

```bash
psrjax trian --config configs/psrnet.py:runlocal --workdir runs/x
psrjax train --config configs/psrnet.py:runlocal,nosuchargument --workdir runs/x
psrjax train --config configs/psrnet.py:runlocal --workdir runs/x --no-such-flag 3
psrjax train --config configs/nosuch.py --workdir runs/x
psrjax train --config configs/psrnet.py --workdir runs/x --config.train.no_such_field=1
psrjax synthesize --workdir runs/x --seed 3 --driving-seed 19 --out x.gif
python benchmarks/no_such_script.py --workdir runs/x
python benchmarks/results_table.py --config configs/psrnet.py:runlocal --set model.nothing=1
psrjax train --config configs/psrnet.py:runlocal,data=DATASET --workdir runs/y \\
    --config.train.steps=200 --config.evals.fid="dict(type='fid', every=0, weights='FILE')"
psrjax synthesize --workdir runs/y --source-view 1 --target-view 3 --out view3.mp4
psrjax synthesize --workdir DIR --seed 9 --driving-seed 19 --background-seed 29 --out x.gif
```

Inline: `psrjax eval --workdir DIR --evals fvd --bogus`.
"""


def test_a_wrong_link_is_reported(tmp_path):
  (tmp_path / "README.md").write_text("# Quick start\n")
  page = tmp_path / "page.md"
  problems = link_problems(page, BAD_PAGE)
  assert len(problems) == 4, problems
  assert "#no-such-heading" in problems[0] and "no/such/file.md" in problems[1]
  assert "nowhere.png" in problems[2] and "nowhere.svg" in problems[3]


def test_slugs_follow_github():
  assert slug("Real videos: `psrjax prepare`") == "real-videos-psrjax-prepare"
  assert slug("D²G-Net: neural video rendering") == "dg-net-neural-video-rendering"
  assert slug("CPU convolutions (oneDNN)") == "cpu-convolutions-onednn"
  assert slug("Sharding, precision, accumulation, EMA") == "sharding-precision-accumulation-ema"
  assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_wrong_commands_are_reported(tmp_path):
  page = tmp_path / "page.md"
  commands = page_commands(page, BAD_PAGE)
  checker = Checker(commands)
  problems = {" ".join(c.words[:2]) + f" #{i}": checker.problems(c)
              for i, c in enumerate(commands)}
  found = [p for ps in problems.values() for p in ps]
  expected = ["unknown verb 'trian'", "unknown config argument 'nosuchargument'",
              "does not accept '--no-such-flag'", "config file configs/nosuch.py does not exist",
              "unknown config key 'train.no_such_field'",
              # runs/x holds PSR-Net: MFCI's option is not its
              "does not accept '--driving-seed'",
              "no script benchmarks/no_such_script.py", "unknown config key 'model.nothing'",
              "does not accept '--bogus'"]
  for text in expected:
    assert sum(text in p for p in found) == 1, (text, found)
  assert len(found) == len(expected), found   # the good commands pass
