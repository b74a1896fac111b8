"""WADO-RS frames (PS3.18 §10.4, frames resource): frame N of a multi-frame is exactly the
N-th frame's bytes, uncompressed, as application/octet-stream."""

from __future__ import annotations

from conformance.context import Context
from conformance.registry import check, expect

SERVICE = "frames"


def frames(context: Context, numbers: list[int]) -> list[bytes]:
    context.stored()
    one = context.corpus["multiframe"]
    return context.client.retrieve_instance_frames(
        one.study_uid,
        one.series_uid,
        one.sop_uid,
        frame_numbers=numbers,
        media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
    )


@check(
    service=SERVICE,
    name="frame 1 of the multi-frame as application/octet-stream equals the sent frame",
    section="PS3.18 §10.4 (Retrieve Frames), §8.7.3 (application/octet-stream)",
)
def frame_one(context: Context) -> None:
    got = frames(context, [1])
    want = context.corpus["multiframe"].frame(1)
    expect(len(got) == 1, f"{len(got)} parts, expected 1")
    expect(got[0] == want, f"frame 1: {len(got[0])} bytes differing from the {len(want)} sent")


@check(
    service=SERVICE,
    name="frame 3 alone, and frames 1,3 in one request, each equal to the sent frame",
    section="PS3.18 §10.4 (Retrieve Frames, frame list)",
)
def frame_three(context: Context) -> None:
    sent = context.corpus["multiframe"]
    got = frames(context, [3])
    expect(len(got) == 1 and got[0] == sent.frame(3), "frame 3 differs from the sent frame 3")
    expect(sent.frame(3) != sent.frame(1), "corpus frames 1 and 3 should differ")
    got = frames(context, [1, 3])
    expect(len(got) == 2, f"frames 1,3: {len(got)} parts, expected 2")
    expect(
        got == [sent.frame(1), sent.frame(3)], "frames 1,3: parts differ from sent frames 1 and 3"
    )
