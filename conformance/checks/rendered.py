"""WADO-RS rendered resources (PS3.18 §10.4, §8.3.5): consumer formats a browser can show,
at the image's own size when no viewport is asked for."""

from __future__ import annotations

from io import BytesIO

from PIL import Image

from conformance.context import Context
from conformance.registry import check, expect

SERVICE = "rendered"


def rendered(
    context: Context, label: str, media_type: str, suffix: str = "/rendered"
) -> Image.Image:
    context.stored()
    one = context.corpus[label]
    response = context.http.get(context.url(one, suffix), headers={"Accept": media_type})
    expect(response.status_code == 200, f"{suffix} as {media_type}: status {response.status_code}")
    got = response.headers.get("content-type", "").split(";")[0].strip().lower()
    expect(got == media_type, f"{suffix}: Content-Type {got!r}, expected {media_type}")
    image = Image.open(BytesIO(response.content))
    image.load()
    return image


def expect_size(image: Image.Image, label: str, context: Context) -> None:
    """§8.3.5.1.3 (Viewport Scaling): "If the viewport parameter is not present, the rendered
    image(s) or video shall not be scaled, i.e., the rendered image(s) shall contain the same
    sized pixel matrix as the source DICOM image"."""
    dataset = context.corpus[label].dataset
    want = (int(dataset.Columns), int(dataset.Rows))
    expect(image.size == want, f"{label}: rendered {image.size}, expected (columns, rows) {want}")


@check(
    service=SERVICE,
    name="instance rendered as image/jpeg decodes at the image's size",
    section="PS3.18 §10.4, §8.7.4, §8.3.5.1.3 (Viewport Scaling: none given, not scaled)",
)
def jpeg(context: Context) -> None:
    image = rendered(context, "ct_small", "image/jpeg")
    expect(image.format == "JPEG", f"decoded as {image.format}")
    expect_size(image, "ct_small", context)


@check(
    service=SERVICE,
    name="instance rendered as image/png decodes at the image's size",
    section="PS3.18 §10.4 (rendered resources), §8.7.4 (rendered media types)",
)
def png(context: Context) -> None:
    image = rendered(context, "mr_small", "image/png")
    expect(image.format == "PNG", f"decoded as {image.format}")
    expect_size(image, "mr_small", context)


@check(
    service=SERVICE,
    name="frame 2 of the multi-frame rendered as image/png",
    section="PS3.18 §10.4 (rendered frames resource)",
)
def frame_png(context: Context) -> None:
    image = rendered(context, "multiframe", "image/png", "/frames/2/rendered")
    expect(image.format == "PNG", f"decoded as {image.format}")
    expect_size(image, "multiframe", context)
