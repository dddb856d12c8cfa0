"""``ballast journal stats|tail|export``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Collection
from typing import IO, Any

import msgspec

from ballast.engine.app.cli import exits
from ballast.engine.app.cli.options import time_option
from ballast.engine.kernel.codec import MESSAGE_TYPES, to_json_dict
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.journal import JournalReader, Record
from ballast.engine.kernel.timefmt import TIME_FORMS, ns_to_iso


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("journal", help="inspect a journal: stats, tail, export")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    stats = actions.add_parser("stats", help="counts, seq and time range, size, gaps")
    stats.add_argument("journal")
    stats.add_argument("--check", action="store_true", help="also run SQLite's quick_check")
    stats.set_defaults(func=stats_cmd)

    tail = actions.add_parser("tail", help="the last N records")
    tail.add_argument("journal")
    tail.add_argument("-n", type=_count, default=20, help="how many (default 20)")
    tail.add_argument("--type", action="append", dest="types", metavar="TYPE")
    tail.set_defaults(func=tail_cmd)

    export = actions.add_parser("export", help="records as JSON lines")
    export.add_argument("journal")
    export.add_argument("-o", "--output", help="file to write (default stdout)")
    export.add_argument("--from-seq", type=int, default=1)
    export.add_argument("--to-seq", type=int)
    export.add_argument(
        "--since", type=time_option, metavar="TIME", help=f"ts_event >= TIME ({TIME_FORMS})"
    )
    export.add_argument("--until", type=time_option, metavar="TIME", help="ts_event < TIME")
    export.add_argument("--type", action="append", dest="types", metavar="TYPE")
    export.add_argument(
        "--skip-damaged",
        action="store_true",
        help="salvage a damaged journal: leave out the records that cannot be read (their seqs "
        "on stderr, exit 1) instead of stopping at the first",
    )
    export.set_defaults(func=export_cmd)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _types(names: list[str] | None) -> Collection[str] | None:
    if not names:
        return None
    unknown = sorted(set(names) - set(MESSAGE_TYPES))
    if unknown:
        raise _UsageError(f"unknown type(s) {unknown}; known: {', '.join(sorted(MESSAGE_TYPES))}")
    return set(names)


class _UsageError(BallastError):
    pass


def record_json(record: Record) -> bytes:
    """One export line: seq, type, both timestamps, the event's fields. Keys sorted."""
    line: dict[str, Any] = {
        "seq": record.seq,
        "type": record.type,
        "ts_event": record.ts_event,
        "ts_init": record.ts_init,
        "event": to_json_dict(record.message),
    }
    return msgspec.json.encode(line, order="sorted")


async def stats_cmd(args: argparse.Namespace) -> int:
    async with JournalReader(args.journal) as reader:
        st = await reader.stats()
        check = await reader.integrity_check() if args.check else None
    span = (
        f"{ns_to_iso(st.first_ts_event)} .. {ns_to_iso(st.last_ts_event)}"
        if st.first_ts_event is not None and st.last_ts_event is not None
        else "-"
    )
    print(f"journal        {st.path}")
    print(f"schema         v{st.schema_version} (created by {st.created_by})")
    print(f"records        {st.count}")
    print(f"seq            {st.first_seq or '-'} .. {st.last_seq or '-'}")
    print(f"gap-free       {'yes' if st.gap_free else 'NO'}")
    print(f"ts_event       {span}")
    print(f"size           {st.size_bytes / 1e6:.2f} MB")
    if check is not None:
        print(f"quick_check    {check}")
    print("by type")
    for name, count in st.by_type.items():
        print(f"  {name:<22} {count}")
    healthy = st.gap_free and (check is None or check == "ok")
    return exits.OK if healthy else exits.FAILURE


async def tail_cmd(args: argparse.Namespace) -> int:
    try:
        types = _types(args.types)
    except _UsageError as exc:
        print(f"ballast journal tail: {exc}", file=sys.stderr)
        return exits.USAGE
    async with JournalReader(args.journal) as reader:
        for rec in await reader.tail(args.n, types):
            body = msgspec.json.encode(to_json_dict(rec.message)).decode()
            print(f"{rec.seq:>10}  {ns_to_iso(rec.ts_event)}  {rec.type:<20} {body}")
    return exits.OK


async def export_cmd(args: argparse.Namespace) -> int:
    try:
        types = _types(args.types)
    except _UsageError as exc:
        print(f"ballast journal export: {exc}", file=sys.stderr)
        return exits.USAGE
    async with JournalReader(args.journal) as reader:  # a missing journal: no output file
        out = _output(args.output)
        if out is None:
            return exits.USAGE
        read = reader.readable_records if args.skip_damaged else reader.records
        records = read(
            start_seq=args.from_seq,
            end_seq=args.to_seq,
            types=types,
            since_ns=args.since,
            until_ns=args.until,
        )
        try:
            # aclosing: the reader's prefetch of the next chunk is cancelled before the reader
            # closes, also when writing fails (a closed stdout)
            async with contextlib.aclosing(records):
                async for rec in records:
                    out.write(record_json(rec) + b"\n")
        finally:
            if args.output:
                out.close()
            else:
                out.flush()
    if reader.skipped:
        print(
            f"ballast journal export: {len(reader.skipped)} damaged records left out: seq "
            f"{seq_ranges(reader.skipped)}",
            file=sys.stderr,
        )
        return exits.FAILURE
    return exits.OK


def seq_ranges(seqs: list[int]) -> str:
    """``[3, 4, 5, 9]`` → ``3..5, 9``."""
    spans: list[list[int]] = []
    for seq in seqs:
        if spans and seq == spans[-1][1] + 1:
            spans[-1][1] = seq
        else:
            spans.append([seq, seq])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in spans)


def _output(path: str | None) -> IO[bytes] | None:
    """The file to export to (stdout when no path), or None after saying why it cannot be."""
    if not path:
        return sys.stdout.buffer
    try:
        return open(path, "wb")  # closed by export_cmd
    except OSError as exc:
        print(f"ballast journal export: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return None
