#!/usr/bin/env python3
"""Builds data/shakespeare_chat/conversations.jsonl from data/tinyshakespeare/input.txt.

Every run of consecutive speeches in which two characters alternate (A, B, A, B, ...) becomes
conversations for the `conversations` dataset: A's speeches are the user's turns, B's the
assistant's, and the system message is "You are B." with B's name as the text writes it
("You are JULIET."). A run is cut into conversations of at most --max-pairs user/assistant pairs;
a user turn left without a reply at the end of a run is dropped. Speaker names stay out of the
messages (the role and the system message say who speaks). Deterministic: the same input gives
the same bytes.

    python3 data/shakespeare_chat/build.py          # from the repository root

No downloads; the standard library only. The output is written to a temporary file and renamed,
so an interrupted build never leaves half a file.
"""
import argparse
import json
import os
import re
import sys
import tempfile

# "ROMEO:", "First Citizen:", "KING RICHARD III:" alone on a line.
SPEAKER = re.compile(r"^([A-Za-z][A-Za-z '&.,-]*):$")
# Groups speaking together are not a character to play: "All", "Both", "All Citizens".
GROUP = re.compile(r"^(All|Both)\b")


def speeches(text):
    """(speaker, speech) per block of the text, None for a block that is no speech (an empty one,
    a stage direction): it breaks any run of alternating speakers."""
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        match = SPEAKER.match(lines[0])
        speech = "\n".join(lines[1:]).strip()
        if match is None or not speech or GROUP.match(match.group(1)):
            yield None
        else:
            yield match.group(1), speech


def runs(items):
    """Maximal non-overlapping runs of speeches alternating between two speakers."""
    run = []
    for item in items:
        if item is None:
            if len(run) >= 2:
                yield run
            run = []
            continue
        speaker = item[0]
        if not run:
            run = [item]
        elif len(run) == 1:
            if speaker != run[0][0]:
                run.append(item)
            else:
                run = [item]
        elif speaker == run[-2][0]:  # A, B, A: the alternation goes on
            run.append(item)
        else:
            if len(run) >= 2:
                yield run
            run = [item]
    if len(run) >= 2:
        yield run


def conversations(text, max_pairs):
    for run in runs(speeches(text)):
        for begin in range(0, len(run), 2 * max_pairs):
            part = run[begin:begin + 2 * max_pairs]
            part = part[: len(part) - len(part) % 2]  # end on the assistant's reply
            if not part:
                continue
            assistant = part[1][0]
            messages = [{"role": "system", "content": f"You are {assistant}."}]
            for i, (_, speech) in enumerate(part):
                messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": speech})
            yield {"messages": messages}


def write_atomic(path, data):
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", default=os.path.join(here, "..", "tinyshakespeare", "input.txt"))
    parser.add_argument("--output", default=os.path.join(here, "conversations.jsonl"))
    parser.add_argument("--max-pairs", type=int, default=4,
                        help="user/assistant pairs per conversation at most (default 4)")
    args = parser.parse_args()
    if args.max_pairs < 1:
        parser.error("--max-pairs must be at least 1")
    with open(args.input, encoding="utf-8") as f:
        text = f.read()
    lines, speakers, pairs = [], set(), 0
    for conversation in conversations(text, args.max_pairs):
        lines.append(json.dumps(conversation, ensure_ascii=False))
        speakers.add(conversation["messages"][0]["content"])
        pairs += (len(conversation["messages"]) - 1) // 2
    if not lines:
        sys.exit(f"no alternating dialogue found in {args.input}")
    data = "\n".join(lines) + "\n"
    write_atomic(args.output, data)
    print(f"{args.output}: {len(lines)} conversations, {pairs} user/assistant pairs, "
          f"{len(speakers)} system messages, {len(data.encode('utf-8'))} bytes")


if __name__ == "__main__":
    main()
