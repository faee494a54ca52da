"""Where a route's CPU goes: reads `perf script` output (call stacks recorded with
`--call-graph dwarf`) on stdin and prints, for each named piece of keyward's own work, the share
of all samples whose stack passes through it, and that share of the measured CPU per request.

Usage: perf script -i FILE | python3 bench/profile.py ROUTE CPU_US_PER_REQUEST

A sample goes to the first piece (in the order below) one of whose frames it passes through, so
the pieces add up. What they leave is the HTTP stack (hyper, axum, tower, the kernel's TCP), the
request's extraction (which the ceiling does too), the runtime, and the glue of verify's own
operation and handler, which the compiler inlines into axum's handler frame (so no frame names
it): the named pieces are a lower bound of keyward's own work on the route.
"""

import re
import sys

# (piece, pattern on a frame's function, pattern on the thread's name or None). A frame is the
# function's name without its offset and object file; patterns anchored with `^` name the
# function itself, not a generic parameter of another one. Ordered: a sample goes to the first
# piece that matches it, so a piece never counts what one before it did.
FLUSH = (r"^keyward_core::usage::(UsageBuffer::(take|send)|Flusher)|^keyward_store_sqlite::usage_writer"
         r"|Store>::record_usage")
# What verify and forward auth both do (forward auth is a verify).
SHARED = [
    ("usage flush (its SQLite connection, batch packing)", FLUSH, r"^keyward-usage$"),
    ("storage read on a cache miss (point reader)", r"get_key_by_digest|^keyward_store_sqlite::point_read", None),
    ("other SQLite connections (sqlx's threads)", r"^$", r"^sqlx-sqlite"),
    ("key cache lookup (quick_cache get)", r"^keyward_core::cache::KeyCache::lookup", None),
    ("key parse, checksum and SHA-256 digest", r"^keyward_domain::key::(ParsedKey::parse|KeyDigest::of)", None),
    ("verifier credential (memo, witness, use note)",
     r"^keyward_core::auth::|^keyward_server::auth::presented_credential", None),
    ("usage counting (buffer shard, map)", r"^keyward_core::usage::UsageBuffer::record", None),
    ("checks and limits",
     r"^keyward_domain::verify::check|^keyward_core::verify::check_rate_limits|sees_key", None),
]
METRICS = ("metrics (counters, histograms)", r"^keyward_core::metrics::", None)
PIECES = {
    "verify": SHARED + [
        ("answer rendering (serde_json)", r"VerifyKeyResponse>::serialize", None),
        METRICS,
    ],
    "forward": SHARED + [
        ("required scopes (query)",
         r"^keyward_server::extract::strict_urlencoded|^keyward_server::api::v1::forward::required_scopes", None),
        ("identity headers", r"^keyward_server::api::v1::forward::identity_headers", None),
        METRICS,
    ],
}


def stacks(lines):
    """(thread name, [frame symbols, leaf first]) per sample of `perf script`'s default output."""
    comm, frames = None, None
    for line in lines:
        if not line.strip():
            if frames is not None:
                yield comm, frames
            comm, frames = None, None
            continue
        if not line.startswith((" ", "\t")):
            comm, frames = line.split(None, 1)[0], []
            continue
        if frames is not None:
            parts = line.strip().split(" ", 1)
            if len(parts) == 2:
                # "<address> <function>+0x<offset> (<object file>)"
                function = re.sub(r" \([^()]*\)$", "", parts[1])
                frames.append(re.sub(r"\+0x[0-9a-f]+$", "", function))
    if frames is not None:
        yield comm, frames


def main():
    route, cpu_us = sys.argv[1], float(sys.argv[2])
    pieces = [(name, re.compile(frame), re.compile(thread) if thread else None)
              for name, frame, thread in PIECES[route]]
    counts = [0] * len(pieces)
    total = 0
    for comm, frames in stacks(sys.stdin):
        total += 1
        for i, (_, frame, thread) in enumerate(pieces):
            if (thread and thread.search(comm or "")) or any(frame.search(f) for f in frames):
                counts[i] += 1
                break
    if total == 0:
        sys.exit("no samples")
    print(f"{route}: {total} samples; {cpu_us:.2f} µs of keyward's CPU per request")
    print(f"| {route}'s own work | share of the CPU | µs per request |")
    print("|---|---:|---:|")
    own = 0
    for (name, _, _), n in zip(pieces, counts):
        own += n
        print(f"| {name} | {100 * n / total:.1f}% | {cpu_us * n / total:.2f} |")
    print(f"| **all of the above** | **{100 * own / total:.1f}%** | **{cpu_us * own / total:.2f}** |")
    rest = total - own
    print(f"| the rest (HTTP stack, extraction, runtime, kernel, inlined glue) "
          f"| {100 * rest / total:.1f}% | {cpu_us * rest / total:.2f} |")


if __name__ == "__main__":
    main()
