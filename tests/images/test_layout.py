"""Strip geometry (pure arithmetic)."""

from __future__ import annotations

from mlops_cli.images.layout import Box, label_height, scaled_width, strip_layout, strip_names


def test_panels_share_the_reference_height_and_keep_their_aspect():
    layout = strip_layout([(160, 120), (80, 60), (300, 100)], None, labels=False)
    assert layout.panel_height == 120 and layout.label_height == 0
    assert layout.boxes == (Box(0, 160), Box(160, 160), Box(320, 360))
    assert (layout.width, layout.height) == (680, 120)


def test_a_given_height_rounds_each_width_half_up():
    layout = strip_layout([(160, 120), (80, 60), (300, 100)], 50, labels=False)
    # 160*50/120 = 66.67 -> 67; 300*50/100 = 150
    assert [b.width for b in layout.boxes] == [67, 67, 150]
    assert scaled_width(3, 2, 1) == 2  # 1.5 rounds up
    assert scaled_width(1, 1000, 10) == 1  # never zero wide


def test_a_missing_match_is_a_blank_as_wide_as_the_reference():
    layout = strip_layout([(200, 100), None, (50, 100)], 100, labels=True)
    assert layout.boxes == (Box(0, 200), Box(200, 200), Box(400, 50))
    assert layout.label_height == label_height(100) == 16
    assert layout.height == 116


def test_label_band_grows_with_the_panel_and_stays_bounded():
    assert label_height(64) == 16
    assert label_height(1000) == 60
    assert label_height(5000) == 96


def test_strip_names_are_numbered_in_order_with_enough_digits():
    assert strip_names(3, "jpg") == ["001.jpg", "002.jpg", "003.jpg"]
    names = strip_names(1000, "png")
    assert names[0] == "0001.png" and names[-1] == "1000.png"
    assert names == sorted(names)
