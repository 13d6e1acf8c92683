from __future__ import annotations

from pathlib import Path

import pytest

from reskd_lightning.data import VideoRecord, check_labels, load_video_list, scan_class_folders


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
