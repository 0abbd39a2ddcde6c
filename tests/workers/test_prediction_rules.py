"""The pure rules of upload_prediction: scores, retry decisions, mask decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from workers.predictions import PredictionError, SampleNotReadyError, mean_score, read_mask
from workers.retry import retry_delay


@pytest.mark.parametrize(
    ("scores", "expected"),
    [([], None), ([0.5, 1.0], 0.75), ([0.2], 0.2)],
)
def test_mean_score_of_what_made_it_into_the_label(scores, expected):
    assert mean_score(scores) == expected


@pytest.mark.parametrize(
    ("error", "attempts", "retried"),
    [
        (PredictionError("bad"), 1, False),
        (SampleNotReadyError("x", retry_after=3), 1, True),
        # Waiting for a sample has its own deadline, not the attempt limit.
        (SampleNotReadyError("x", retry_after=3), 99, True),
    ],
)
def test_retry_decisions(error, attempts, retried):
    delay = retry_delay(error, attempts, max_attempts=5, cap=30)
    assert (delay is not None) is retried
    if retried:
        assert delay == 3


@pytest.mark.parametrize("mode", ["L", "I;16", "RGB"])
def test_read_mask_gives_instance_ids(mode):
    ids = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    image = Image.fromarray(ids, mode="L").convert(mode)
    data = io.BytesIO()
    image.save(data, format="PNG")
    decoded = read_mask(data.getvalue())
    if mode == "RGB":
        # Grey value v becomes (v, v, v): the 24-bit id is v * 0x010101.
        assert decoded.tolist() == (ids.astype(np.uint32) * 0x010101).tolist()
    else:
        assert decoded.tolist() == ids.tolist()


def test_unreadable_mask_is_a_permanent_error():
    with pytest.raises(PredictionError, match="not a readable image"):
        read_mask(b"not a png")
