"""The tracker's search for the hand on a first frame, and the confidence guard on re-fits, through the forward loop
with a stand-in network that finds a bright square and scores how well the crop frames it."""

from __future__ import annotations

import numpy as np
import pytest

from tassn.predict.crop_box import CropBox
from tassn.predict.passes import run_forward
from tassn.predict.tracking import TrackingCrop

FRAME, HAND, CENTRE, MARGIN = 128, 26, (92.0, 34.0), 1.5
UNIT = np.random.default_rng(0).uniform(0, 1, (21, 2))
UNIT[:2] = [[0, 0], [1, 1]]  # the keypoints span the hand's box


class SquareNetwork:
    """Finds the bright square in its crop. Like a network trained on crops at one scale, it draws the hand part
    way towards the size it was trained on (``bias`` of the way to ``crop / MARGIN``, a fraction ``scale`` of it)
    and is most confident when the crop frames the hand as in training (side = ``MARGIN`` × the hand)."""

    crop_size = 32

    def __init__(self, bias: float = 0.5, scale: float = 1.0) -> None:
        self.bias, self.scale, self.adopted = bias, scale, 0

    def restart(self) -> None:
        pass

    def trial(self, crop: np.ndarray):
        s = self.crop_size
        ys, xs = np.nonzero(crop[..., 0] > 128)
        if xs.size == 0:
            return (np.full((21, 2), s / 2) + UNIT, np.full(21, 0.02), np.zeros((21, 3)), np.zeros((8, 3))), None
        lo, hi = np.array([xs.min(), ys.min()]) - 0.5, np.array([xs.max(), ys.max()]) + 0.5
        centre, extent = (lo + hi) / 2, float((hi - lo).max())
        drawn = self.scale * ((1 - self.bias) * extent + self.bias * s / MARGIN)
        kp = centre + (UNIT - 0.5) * drawn
        conf = np.full(21, 0.9 * np.exp(-np.log(extent * MARGIN / s) ** 2))
        return (kp, conf, np.zeros((21, 3)), np.zeros((8, 3))), None

    def adopt(self, state) -> None:
        self.adopted += 1

    def __call__(self, crop: np.ndarray, commit: bool = True):
        return self.trial(crop)[0]


class Frames:
    """A still video: a bright square of side ``HAND`` on black."""

    class info:  # noqa: N801 - the attribute FrameSource has
        width = height = FRAME

    path = "square"

    def __iter__(self):
        frame = np.zeros((FRAME, FRAME, 3), np.uint8)
        x, y = int(CENTRE[0] - HAND / 2), int(CENTRE[1] - HAND / 2)
        frame[y: y + HAND, x: x + HAND] = 255
        for _ in range(3):
            yield frame

    def __len__(self) -> int:
        return 3


def first_box(network: SquareNetwork, **options) -> CropBox:
    tracker = TrackingCrop(initial=options.pop("initial", None), margin=MARGIN, **options)
    _, boxes = run_forward(Frames(), tracker, network, None, False, None, progress=False)
    return boxes[0]


def test_search_finds_a_small_hand_that_the_full_frame_misses() -> None:
    start = first_box(SquareNetwork(), search=0, refine=0)
    assert start.size == FRAME  # without a search the first frame is read on the full frame
    found = first_box(SquareNetwork(), search=6, refine=0)
    assert found.size == pytest.approx(MARGIN * HAND, rel=0.1)
    assert np.hypot(found.cx - CENTRE[0], found.cy - CENTRE[1]) < 0.1 * HAND


def test_a_users_box_is_not_searched() -> None:
    box = CropBox(60.0, 60.0, 64.0)
    assert first_box(SquareNetwork(), search=6, refine=0, initial=box) == box


def test_a_refit_that_reads_the_hand_less_surely_is_dropped() -> None:
    right = CropBox(*CENTRE, MARGIN * HAND)
    shrinking = SquareNetwork(bias=0.0, scale=0.6)  # draws the hand too small: its re-fit box is too tight
    assert first_box(shrinking, refine=1, search=0, initial=right) == right
    honest = SquareNetwork(bias=0.0, scale=1.0)
    moved = CropBox(CENTRE[0] + 4, CENTRE[1] - 3, 1.2 * MARGIN * HAND)  # off the hand: the re-fit is better
    refit = first_box(honest, refine=1, search=0, initial=moved)
    assert refit != moved and np.hypot(refit.cx - CENTRE[0], refit.cy - CENTRE[1]) < 1.0


def test_the_chosen_trial_is_the_frames_step() -> None:
    network = SquareNetwork()
    first_box(network, search=2, refine=1)
    assert network.adopted == 3  # one adopted step per frame, however many trials


def test_trial_boxes_are_compared_by_a_quantile_of_the_joints_peaks() -> None:
    peaks = np.array([0.9] * 18 + [0.05, 0.1, np.nan])  # a box that cuts off two fingertips
    assert TrackingCrop().trial_score(peaks) == pytest.approx(0.9)  # the median does not see them
    assert TrackingCrop(compare_quantile=0.0).trial_score(peaks) == pytest.approx(0.05)
    assert TrackingCrop().trial_score(np.full(21, np.nan)) == 0.0
    with pytest.raises(ValueError, match="compare_quantile"):
        TrackingCrop(compare_quantile=1.5)


class Recorder(SquareNetwork):
    """A :class:`SquareNetwork` that records the side of every crop it predicts on (its committed steps)."""

    def __init__(self, bias: float = 0.5, scale: float = 1.0) -> None:
        super().__init__(bias, scale)
        self.calls = 0

    def __call__(self, crop: np.ndarray, commit: bool = True):
        self.calls += 1
        return super().__call__(crop, commit)


def test_a_locator_network_places_the_crop_the_main_network_predicts_on() -> None:
    # The main network draws the hand at the size it was trained on (bias 0.9): tracking itself from the full frame,
    # its box stays far too large. A locator that reads the hand's place and size (bias 0, as a network trained on
    # jittered crops) gives every frame, the first included, the training crop of the hand.
    main_alone = SquareNetwork(bias=0.9)
    tracker = TrackingCrop(margin=MARGIN, search=0, refine=0)
    _, alone = run_forward(Frames(), tracker, main_alone, None, False, None, progress=False)
    assert alone[0].size == FRAME and alone[-1].size > 1.5 * MARGIN * HAND

    main, locator = Recorder(bias=0.9), SquareNetwork(bias=0.0)
    tracker = TrackingCrop(margin=MARGIN, refine=0)
    result, boxes = run_forward(Frames(), tracker, main, None, False, None, progress=False, locator=locator)
    for box in boxes:  # (the first frame's search reads the hand on boxes up to the full frame)
        assert box.size == pytest.approx(MARGIN * HAND, rel=0.1)
        assert np.hypot(box.cx - CENTRE[0], box.cy - CENTRE[1]) < 0.1 * HAND
    assert main.calls == len(boxes) == 3 and locator.adopted == 3  # one step of each network per frame
    # the results are the main network's, on the located box: its keypoints span the hand it saw there
    drawn = np.ptp(result.kp_crop[-1], axis=0).max()
    assert drawn == pytest.approx(0.1 * HAND * main.crop_size / (MARGIN * HAND) + 0.9 * main.crop_size / MARGIN, rel=0.1)


def test_a_locator_needs_a_tracking_crop() -> None:
    from tassn.predict.hand_crop import FixedBoxCrop

    with pytest.raises(ValueError, match="locator"):
        run_forward(Frames(), FixedBoxCrop(CropBox(*CENTRE, 40.0)), SquareNetwork(), None, False, None,
                    progress=False, locator=SquareNetwork())


def test_reading_the_settled_box_again_places_it_closer_to_the_training_crop() -> None:
    # A locator that draws the hand part of the way towards its training size (bias 0.3) settles a box that is off
    # by 0.3 of the error of the box it read; reading the settled box again takes 0.3 of what is left.
    def located(passes: int) -> tuple[list[CropBox], Recorder]:
        main, locator = Recorder(bias=0.9), Recorder(bias=0.3)
        trial = locator.trial
        locator.trials = 0

        def counting(crop):
            locator.trials += 1
            return trial(crop)

        locator.trial = counting
        tracker = TrackingCrop(margin=MARGIN, search=0, refine=0, settle_passes=passes)
        _, boxes = run_forward(Frames(), tracker, main, None, False, None, progress=False, locator=locator)
        return boxes, locator

    true_side = MARGIN * HAND
    errors = {}
    for passes in (0, 1, 3):
        boxes, locator = located(passes)
        errors[passes] = abs(boxes[0].size - true_side)
        assert locator.adopted == 3 and locator.trials == 3 * (1 + passes)  # one committed step, `passes` trials
    assert errors[1] < 0.5 * errors[0] and errors[3] < errors[1] and errors[3] < 0.05 * true_side
    with pytest.raises(ValueError, match="settle_passes"):
        TrackingCrop(settle_passes=-1)


def test_a_confused_reading_moves_the_predicted_box_at_most_a_step_from_the_tracked_box() -> None:
    tracker = TrackingCrop(margin=MARGIN, search=0, refine=0)
    tracker.box(0, FRAME, FRAME)
    assert tracker.settle_anchor() is None  # a start frame: the settled box is free to find the hand's size
    hand = np.asarray(CENTRE) + (UNIT - 0.5) * HAND
    tracker.update(0, hand, np.full(21, 0.9))
    anchor = tracker.settle_anchor()
    assert anchor is not None
    bunched = np.asarray(CENTRE) + (UNIT - 0.5) * 2.0  # one reading draws the hand as a dot
    free = tracker.settle(anchor, bunched, np.full(21, 0.9))
    held = tracker.settle(anchor, bunched, np.full(21, 0.9), anchor)
    assert free is not None and free.size == pytest.approx(tracker.floor)
    assert held is not None and held.size == pytest.approx(anchor.size / tracker.max_scale_step)


def test_the_next_frames_box_follows_the_locators_reading_of_the_settled_box() -> None:
    locator, readings, updates = SquareNetwork(bias=0.3), [], []
    trial = locator.trial

    def reading(crop):
        readings.append(crop)
        return trial(crop)

    locator.trial = reading
    tracker = TrackingCrop(margin=MARGIN, search=0, refine=0, settle_passes=1)
    record = tracker.update

    def update(index, kp2d, confidence):
        updates.append((len(readings), np.asarray(kp2d).copy()))
        record(index, kp2d, confidence)

    tracker.update = update
    _, boxes = run_forward(Frames(), tracker, SquareNetwork(bias=0.9), None, False, None, progress=False,
                           locator=locator)
    assert [n for n, _ in updates] == [2, 4, 6]  # each frame: the tracked box's reading, then the settled box's
    # on the first frame (no step bound yet) the box predicted on is exactly the one that last reading gives
    assert CropBox.from_keypoints(updates[0][1], MARGIN).as_array() == pytest.approx(boxes[0].as_array())


class CountingNetwork(SquareNetwork):
    """A :class:`SquareNetwork` that records the side of every crop it is tried on."""

    def __init__(self) -> None:
        super().__init__()
        self.tried: list[int] = []

    def trial(self, crop: np.ndarray):
        self.tried.append(crop.shape[0])
        return super().trial(crop)


class StubDetector:
    """A hand detector that returns fixed boxes and counts the frames it saw."""

    def __init__(self, boxes: list[CropBox]) -> None:
        self.boxes, self.frames = boxes, 0

    def __call__(self, frame: np.ndarray) -> list[tuple[CropBox, float]]:
        self.frames += 1
        return [(box, 0.9) for box in self.boxes]


def test_a_detectors_boxes_replace_the_searchs_grid() -> None:
    near = CropBox(CENTRE[0] + 3, CENTRE[1] - 2, 1.3 * MARGIN * HAND)  # a detection a little off and too large
    detector = StubDetector([near])
    tracker = TrackingCrop(margin=MARGIN, search=2, refine=0, redetect_iou=None)
    network = CountingNetwork()
    calls = []
    original = tracker.search_box
    tracker.search_box = lambda index, predict, starts=None: calls.append(starts) or original(index, predict, starts)
    _, boxes = run_forward(Frames(), tracker, network, None, False, None, progress=False, detector=detector)
    assert detector.frames == 1 and calls == [[near]]  # the first frame only, from the detector's box alone
    assert boxes[0].size == pytest.approx(MARGIN * HAND, rel=0.1)  # settled onto the hand from there
    assert np.hypot(boxes[0].cx - CENTRE[0], boxes[0].cy - CENTRE[1]) < 0.1 * HAND
    # the start read and re-fit twice, the first frame's step on the found box, frames 2 and 3: 6 trials (from
    # the grid's 19 candidates the search alone would take 57)
    assert len(network.tried) == 6


def test_a_detector_needs_a_crop_that_searches() -> None:
    from tassn.predict.hand_crop import FixedBoxCrop

    with pytest.raises(ValueError, match="first box"):
        run_forward(Frames(), FixedBoxCrop(CropBox(60.0, 60.0, 64.0)), SquareNetwork(), None, False, None,
                    progress=False, detector=StubDetector([]))


class MovingSquare(Frames):
    """The square jumps by 40 px to the left after the first frame (a cut, or a hand the tracker lost)."""

    def __iter__(self):
        for t in range(3):
            frame = np.zeros((FRAME, FRAME, 3), np.uint8)
            x, y = int(CENTRE[0] - HAND / 2) - (40 if t else 0), int(CENTRE[1] - HAND / 2)
            frame[y: y + HAND, x: x + HAND] = 255
            yield frame


class SquareDetector(StubDetector):
    """A hand detector that finds the bright square in the whole frame."""

    def __init__(self) -> None:
        super().__init__([])

    def __call__(self, frame: np.ndarray) -> list[tuple[CropBox, float]]:
        self.frames += 1
        ys, xs = np.nonzero(frame[..., 0] > 128)
        return [(CropBox.from_corners(xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5, MARGIN), 0.9)]


def test_a_detection_replaces_a_tracked_box_that_lost_the_hand() -> None:
    start = CropBox(*CENTRE, MARGIN * HAND)
    moved = CropBox(CENTRE[0] - 40, CENTRE[1], MARGIN * HAND)
    for redetect, expected in ((None, []), (0.65, [1])):
        detector = SquareDetector()
        tracker = TrackingCrop(margin=MARGIN, search=0, refine=0, initial=start, redetect_iou=redetect)
        _, boxes = run_forward(MovingSquare(), tracker, SquareNetwork(bias=0.0), None, False, None, progress=False,
                               detector=detector)
        assert tracker.redetected == expected
        assert detector.frames == (0 if redetect is None else 3)  # read on every frame only to check the box
        if redetect is None:  # the tracked box stays where the hand was: nothing in its crop to follow
            assert boxes[1].iou(start) > 0.9 and boxes[1].iou(moved) < 0.3
        else:
            assert boxes[1].iou(moved) > 0.9 and boxes[2].iou(moved) > 0.9


def test_a_detection_that_agrees_with_the_box_leaves_it_alone() -> None:
    tracker = TrackingCrop(margin=MARGIN, initial=CropBox(50.0, 50.0, 40.0), redetect_iou=0.65)
    tracker.box(0, FRAME, FRAME)
    assert not tracker.check_detection(0, CropBox(53.0, 50.0, 42.0))  # IoU 0.78
    assert tracker.check_detection(0, CropBox(62.0, 50.0, 40.0))  # IoU 0.54
    assert tracker.box(0, FRAME, FRAME) == CropBox(62.0, 50.0, 40.0) and tracker.redetected == [0]
    assert tracker.settle_anchor() is None  # a replaced box is a start box: its settled side is free
    with pytest.raises(ValueError, match="redetect_iou"):
        TrackingCrop(redetect_iou=0.0)


def test_square_iou() -> None:
    a = CropBox(10.0, 10.0, 10.0)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou(CropBox(15.0, 10.0, 10.0)) == pytest.approx(50 / 150)
    assert a.iou(CropBox(40.0, 10.0, 10.0)) == 0.0
