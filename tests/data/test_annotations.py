from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from reskd_lightning.data import VideoRecord, check_labels, load_video_list, scan_class_folders
from reskd_lightning.data.annotations import (
    load_class_names,
    load_kinetics_csv,
    load_rawframe_list,
    load_sthv2,
    to_multi_hot,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_video_list_paths_are_relative_to_the_list_folder(tmp_path: Path) -> None:
    list_file = write(
        tmp_path / "lists" / "train.txt",
        "# mmaction2 video list\n"
        "videos/a.mp4 3\n"
        "\n"
        "videos/b.mp4\t0 2 5\n"  # multi-label, tab separated
        "   videos/c.mp4   1   \n",
    )
    records = load_video_list(list_file)
    assert records == [
        VideoRecord(str(tmp_path / "lists" / "videos" / "a.mp4"), 3),
        VideoRecord(str(tmp_path / "lists" / "videos" / "b.mp4"), [0, 2, 5]),
        VideoRecord(str(tmp_path / "lists" / "videos" / "c.mp4"), 1),
    ]
    assert records[1].labels == [0, 2, 5] and records[0].labels == [3]


def test_video_list_paths_join_data_prefix(tmp_path: Path) -> None:
    list_file = write(tmp_path / "train.txt", "a.mp4 0\n/abs/b.mp4 1\n")
    records = load_video_list(list_file, data_prefix="/data/k400")
    assert [r.path for r in records] == ["/data/k400/a.mp4", "/abs/b.mp4"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("videos/a.mp4", "line has no label: expected 'path label [label ...]'"),
        ("videos/a.mp4 dog", "label 'dog' is not an integer: expected 'path label [label ...]'"),
        ("videos/a.mp4 1.5", "label '1.5' is not an integer"),
        ("videos/a.mp4 -2", "label -2 is negative"),
    ],
)
def test_video_list_errors_name_file_line_and_expected_format(
    tmp_path: Path, line: str, message: str
) -> None:
    list_file = write(tmp_path / "train.txt", f"ok.mp4 0\n# comment\n{line}\n")
    with pytest.raises(ValueError) as info:
        load_video_list(list_file)
    text = str(info.value)
    assert f"{list_file}:3" in text
    assert message in text
    assert repr(line) in text


def test_video_list_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_video_list(tmp_path / "nope.txt")
    empty = write(tmp_path / "empty.txt", "# nothing\n\n")
    with pytest.raises(ValueError, match="has no videos"):
        load_video_list(empty)


def test_scan_class_folders_labels_by_sorted_folder_name(tmp_path: Path) -> None:
    files = ["walk/x1.mp4", "walk/sub/x2.AVI", "run/y.mkv", "run/notes.txt", "jump/z.webm", ".hidden/h.mp4"]
    for rel in files:
        write(tmp_path / rel, "")
    records, classes = scan_class_folders(tmp_path)
    assert classes == ["jump", "run", "walk"]
    assert [(Path(r.path).relative_to(tmp_path).as_posix(), r.label) for r in records] == [
        ("jump/z.webm", 0),
        ("run/y.mkv", 1),
        ("walk/sub/x2.AVI", 2),
        ("walk/x1.mp4", 2),
    ]


def test_scan_class_folders_errors_name_the_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        scan_class_folders(tmp_path / "missing")
    with pytest.raises(ValueError, match=f"{tmp_path}.*no class folders"):
        scan_class_folders(tmp_path)
    write(tmp_path / "walk" / "readme.txt", "")
    with pytest.raises(ValueError, match=f"{tmp_path}.*1 class folders but no videos"):
        scan_class_folders(tmp_path)


def test_check_labels_names_source_path_and_label() -> None:
    records = [VideoRecord("a.mp4", 0), VideoRecord("b.mp4", [1, 4])]
    check_labels(records, 5, "train.txt")
    with pytest.raises(ValueError, match=r"train.txt: video 'b.mp4' has label 4, outside \[0, 4\)"):
        check_labels(records, 4, "train.txt")


def test_video_list_counts_a_repeated_label_once(tmp_path: Path) -> None:
    # ActivityNet lists repeat a class a video has several segments of.
    records = load_video_list(write(tmp_path / "train.txt", "a.mp4 7 7\nb.mp4 3 1 3\n"))
    assert [r.label for r in records] == [7, [3, 1]]


def test_check_labels_checks_every_label_of_a_multi_label_record() -> None:
    check_labels([VideoRecord("a", [0, 199])], 200, "anet_val.txt")
    with pytest.raises(ValueError, match=r"anet_val.txt: video 'a' has label 200, outside \[0, 200\)"):
        check_labels([VideoRecord("a", [0, 200])], 200, "anet_val.txt")
    with pytest.raises(ValueError, match="video 'a' has no label"):
        check_labels([VideoRecord("a", [])], 200, "anet_val.txt")


# -- rawframe lists ------------------------------------------------------------------------------------


def test_rawframe_list_with_and_without_offsets(tmp_path: Path) -> None:
    plain = write(
        tmp_path / "anet_train_list.txt",
        "# frame_dir total_frames label [label ...]\n"
        "v_abc 3000 12\n"
        "v_def 1500 4 7\n",  # ActivityNet: a video of two classes
    )
    assert load_rawframe_list(plain, data_prefix="/data/anet/rawframes") == [
        VideoRecord("/data/anet/rawframes/v_abc", 12, num_frames=3000),
        VideoRecord("/data/anet/rawframes/v_def", [4, 7], num_frames=1500),
    ]
    clips = write(tmp_path / "clips.txt", "long_video 0 64 3\nlong_video 64 32 3 5\n")
    records = load_rawframe_list(clips, with_offset=True)
    assert records == [
        VideoRecord(str(tmp_path / "long_video"), 3, num_frames=64, offset=0),
        VideoRecord(str(tmp_path / "long_video"), [3, 5], num_frames=32, offset=64),
    ]
    assert load_video_list(write(tmp_path / "v.txt", "a.mp4 1\n"))[0].offset == 0


@pytest.mark.parametrize(
    ("line", "with_offset", "message"),
    [
        ("frames/a", False, "line has 1 field(s), too few: expected 'frame_dir total_frames label [label ...]'"),
        ("frames/a 120", False, "line has no label"),
        ("frames/a 12x 3", False, "total_frames '12x' is not an integer"),
        ("frames/a 0 3", False, "total_frames 0 is below 1"),
        ("frames/a -5 3", False, "total_frames -5 is below 1"),
        ("frames/a 120 cat", False, "label 'cat' is not an integer"),
        ("frames/a 120 2 -1", False, "label -1 is negative"),
        ("frames/a 10 120", True, "line has no label: expected 'frame_dir offset total_frames label [label ...]'"),
        ("frames/a -10 120 3", True, "offset -10 is negative"),
        ("frames/a 1.5 120 3", True, "offset '1.5' is not an integer"),
        ("frames/a 10 0 3", True, "total_frames 0 is below 1"),
    ],
)
def test_rawframe_list_errors_name_file_line_token_and_format(
    tmp_path: Path, line: str, with_offset: bool, message: str
) -> None:
    good = "frames/ok 0 120 1" if with_offset else "frames/ok 120 1"
    list_file = write(tmp_path / "val.txt", f"{good}\n\n{line}\n")
    with pytest.raises(ValueError) as info:
        load_rawframe_list(list_file, with_offset=with_offset)
    text = str(info.value)
    assert f"{list_file}:3: " in text and message in text and repr(line) in text


def test_rawframe_list_read_without_with_offset_says_so(tmp_path: Path) -> None:
    list_file = write(tmp_path / "clips.txt", "long_video 0 64 3\n")
    with pytest.raises(ValueError, match="total_frames 0 is below 1.*needs with_offset=True"):
        load_rawframe_list(list_file)


def test_rawframe_list_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="rawframe list .*nope.txt"):
        load_rawframe_list(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="rawframe list .* has no videos"):
        load_rawframe_list(write(tmp_path / "empty.txt", "\n# nothing\n"))


# -- Kinetics ------------------------------------------------------------------------------------------

# The official Kinetics-400 header, and the same rows with the columns in another order.
K400_CSV = """label,youtube_id,time_start,time_end,split,is_cc
"passing American football (in game)",-3B32lodo2M,59,69,train,0
abseiling,0347ZoDXyP0,14.0,24.0,train,0
"tying, knots",--6bJUbfpnQ,17,27,train,0
abseiling,__wsytoYy3Q,0,10,train,0
"""
REORDERED_CSV = """youtube_id,time_start,time_end,split,label
-3B32lodo2M,59,69,train,"passing American football (in game)"
0347ZoDXyP0,14,24,train,abseiling
--6bJUbfpnQ,17,27,train,"tying, knots"
__wsytoYy3Q,0,10,train,abseiling
"""


@pytest.mark.parametrize("text", [K400_CSV, REORDERED_CSV], ids=["official-order", "label-last"])
def test_kinetics_csv_reads_columns_by_name(tmp_path: Path, text: str) -> None:
    csv_file = write(tmp_path / "train.csv", text)
    records, classes = load_kinetics_csv(csv_file, data_prefix="/data/k400/videos_train")
    assert classes == ["abseiling", "passing American football (in game)", "tying, knots"]
    assert records == [
        VideoRecord("/data/k400/videos_train/-3B32lodo2M_000059_000069.mp4", 1),
        VideoRecord("/data/k400/videos_train/0347ZoDXyP0_000014_000024.mp4", 0),
        VideoRecord("/data/k400/videos_train/--6bJUbfpnQ_000017_000027.mp4", 2),
        VideoRecord("/data/k400/videos_train/__wsytoYy3Q_000000_000010.mp4", 0),
    ]


def test_kinetics_csv_given_classes_and_class_folder_templates(tmp_path: Path) -> None:
    csv_file = write(tmp_path / "validate.csv", K400_CSV)
    names = write(tmp_path / "label_map.txt", "tying, knots\n\nabseiling\npassing American football (in game)\n")
    classes = load_class_names(names)
    records, got = load_kinetics_csv(
        csv_file, classes=classes, filename_tmpl="{label}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
    )
    assert got == classes == ["tying, knots", "abseiling", "passing American football (in game)"]
    assert records[0] == VideoRecord(
        str(tmp_path / "passing American football (in game)" / "-3B32lodo2M_000059_000069.mp4"), 2
    )
    # mmaction2's rename_classnames.sh turns the class folders' spaces into underscores.
    records, _ = load_kinetics_csv(csv_file, classes=classes, filename_tmpl="{label_underscored}/{youtube_id}.mp4")
    assert records[2].path == str(tmp_path / "tying,_knots" / "--6bJUbfpnQ.mp4")


def test_kinetics_csv_ytid_list_keeps_a_mini_kinetics_subset(tmp_path: Path) -> None:
    csv_file = write(tmp_path / "train.csv", K400_CSV)
    ytids = write(tmp_path / "train_ytid_list.txt", "__wsytoYy3Q\n--6bJUbfpnQ\nnot_in_csv_\n")
    records, classes = load_kinetics_csv(csv_file, ytid_list=ytids)
    assert classes == ["abseiling", "tying, knots"]  # only the kept rows' labels
    assert [(Path(r.path).name, r.label) for r in records] == [
        ("--6bJUbfpnQ_000017_000027.mp4", 1),
        ("__wsytoYy3Q_000000_000010.mp4", 0),
    ]
    other_split = write(tmp_path / "val_ytid_list.txt", "zzzzzzzzzzz\n")
    with pytest.raises(ValueError, match=r"train.csv: none of its rows has a youtube_id listed in .*val_ytid_list"):
        load_kinetics_csv(csv_file, ytid_list=other_split)


def test_kinetics_test_csv_without_labels_is_refused(tmp_path: Path) -> None:
    csv_file = write(tmp_path / "test.csv", "youtube_id,time_start,time_end,split\n-3B32lodo2M,59,69,test\n")
    with pytest.raises(ValueError) as info:
        load_kinetics_csv(csv_file)
    text = str(info.value)
    assert f"{csv_file}:1: Kinetics CSV lacks column(s) ['label']" in text
    assert "test CSV has no labels" in text
    assert "header found ['youtube_id', 'time_start', 'time_end', 'split']" in text
    assert "columns required ['label', 'youtube_id', 'time_start', 'time_end']" in text


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            '"tying knots",x1,17,27,train,0',
            r"label 'tying knots' is not one of the 3 classes given; did you mean 'tying, knots'\?",
        ),
        ("abseiling,x1,14.5,24,train,0", r"time_start '14.5' is not a whole, non-negative number of seconds"),
        ("abseiling,x1,14,,train,0", r"time_end '' is not a whole"),
        ("abseiling,x1,14,24", r"row has 4 fields, the header .* has 6"),
    ],
)
def test_kinetics_csv_errors_name_the_line_and_value(tmp_path: Path, row: str, message: str) -> None:
    csv_file = write(tmp_path / "train.csv", K400_CSV + row + "\n")
    classes = ["abseiling", "passing American football (in game)", "tying, knots"]
    with pytest.raises(ValueError, match=rf"{re.escape(str(csv_file))}:6: {message}"):
        load_kinetics_csv(csv_file, classes=classes)


def test_kinetics_csv_template_with_an_unknown_key(tmp_path: Path) -> None:
    csv_file = write(tmp_path / "train.csv", K400_CSV)
    with pytest.raises(ValueError, match=r"train.csv:2: filename_tmpl '\{ytid\}.mp4' cannot be filled.*'youtube_id'"):
        load_kinetics_csv(csv_file, filename_tmpl="{ytid}.mp4")


def test_class_names_refuse_repeats(tmp_path: Path) -> None:
    names = write(tmp_path / "classes.txt", "abseiling\nzumba\nabseiling\n")
    with pytest.raises(ValueError) as info:
        load_class_names(names)
    assert f"{names}:3: class 'abseiling' is repeated (first at {names}:1)" in str(info.value)


# -- Something-Something V2 ----------------------------------------------------------------------------

SSV2_LABELS = {
    "Approaching something with your camera": "0",
    "Holding something next to something": "2",
    "Pushing something from left to right": "1",
}


def write_sthv2(root: Path, entries: list[dict]) -> tuple[Path, Path]:
    labels = write(root / "labels.json", json.dumps(SSV2_LABELS))
    return write(root / "train.json", json.dumps(entries)), labels


def test_sthv2_classes_come_from_the_bracket_free_template(tmp_path: Path) -> None:
    train, labels = write_sthv2(
        tmp_path,
        [
            {
                "id": "78687",
                "label": "holding potato next to vicks vaporub bottle",
                "template": "Holding [something] next to [something]",
                "placeholders": ["potato", "vicks vaporub bottle"],
            },
            {
                "id": "42326",
                "label": "pushing a cup from left to right",
                "template": "Pushing [something] from left to right",
            },
        ],
    )
    records, classes = load_sthv2(train, labels, data_prefix="/data/sthv2/20bn-something-something-v2")
    assert classes == [  # ordered by id
        "Approaching something with your camera",
        "Pushing something from left to right",
        "Holding something next to something",
    ]
    assert records == [
        VideoRecord("/data/sthv2/20bn-something-something-v2/78687.webm", 2),
        VideoRecord("/data/sthv2/20bn-something-something-v2/42326.webm", 1),
    ]
    assert load_sthv2(train, labels, suffix=".mp4")[0][0].path == str(tmp_path / "78687.mp4")


def test_sthv2_unknown_template_names_the_entry(tmp_path: Path) -> None:
    train, labels = write_sthv2(
        tmp_path,
        [
            {"id": "1", "template": "Pushing [something] from left to right"},
            {"id": "2", "template": "Pushing [something] from left to rigth"},
        ],
    )
    with pytest.raises(ValueError) as info:
        load_sthv2(train, labels)
    text = str(info.value)
    assert f"{train}: entry id '2' has template 'Pushing [something] from left to rigth'" in text
    assert f"'Pushing something from left to rigth' is not in {labels}" in text
    assert "did you mean 'Pushing something from left to right'" in text


def test_sthv2_test_json_has_no_labels(tmp_path: Path) -> None:
    test, labels = write_sthv2(tmp_path, [{"id": "1420"}, {"id": "1421"}])
    with pytest.raises(ValueError, match=r"entry id '1420' has only an id: .*test.json, which has no labels"):
        load_sthv2(test, labels)


def test_sthv2_labels_json_ids_must_be_0_to_n(tmp_path: Path) -> None:
    train = write(tmp_path / "train.json", json.dumps([{"id": "1", "template": "a"}]))
    labels = write(tmp_path / "labels.json", json.dumps({"a": "0", "b": "2"}))
    with pytest.raises(ValueError, match=r"labels.json: class ids must be 0..1; missing \[1\]"):
        load_sthv2(train, labels)
    write(tmp_path / "labels.json", "{not json")
    with pytest.raises(ValueError, match=r"labels.json:1: not valid JSON"):
        load_sthv2(train, labels)


# -- multi-hot targets ---------------------------------------------------------------------------------


def test_to_multi_hot() -> None:
    record = VideoRecord("v_def", [4, 7], num_frames=1500)
    target = to_multi_hot(record.labels, 10)
    assert target.dtype == torch.float32 and target.shape == (10,)
    assert target.nonzero().flatten().tolist() == [4, 7]
    assert to_multi_hot(2, 3).tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match=r"labels \[10\] are outside \[0, 10\)"):
        to_multi_hot([3, 10], 10)


def test_a_byte_order_mark_is_not_part_of_the_first_path(tmp_path: Path) -> None:
    # Lists saved by Windows editors start with a UTF-8 BOM; read as plain utf-8 it became part of the first
    # path, which was then reported missing (and, in a long list, silently replaced by another video).
    (tmp_path / "list.txt").write_bytes("\ufeffa.mp4 0\nb.mp4 1\n".encode("utf-8"))
    records = load_video_list(tmp_path / "list.txt")
    assert [Path(r.path).name for r in records] == ["a.mp4", "b.mp4"]
    (tmp_path / "frames.txt").write_bytes("\ufeffv_a 8 0\n".encode("utf-8"))
    assert Path(load_rawframe_list(tmp_path / "frames.txt")[0].path).name == "v_a"
    (tmp_path / "classes.txt").write_bytes("\ufeffabseiling\nair drumming\n".encode("utf-8"))
    assert load_class_names(tmp_path / "classes.txt") == ["abseiling", "air drumming"]


def test_duplicate_entries_are_warned_once_with_their_lines(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("a.mp4 0\nb.mp4 1\n# c\na.mp4 0\nb.mp4 2\nd.mp4 3\n")
    with pytest.warns(UserWarning) as caught:
        records = load_video_list(tmp_path / "list.txt")
    assert len(records) == 5  # each read as often as listed, as mmaction2 does
    messages = [str(w.message) for w in caught if "more than once" in str(w.message)]
    assert len(messages) == 1
    assert "lists 2 video(s) more than once" in messages[0]
    assert "a.mp4 (lines 1 and 4)" in messages[0] and "b.mp4 (lines 2 and 5)" in messages[0]
