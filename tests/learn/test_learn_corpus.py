"""The held-out split and the clean-prose corpus."""

import subprocess

from infitool_edit.learn import corpus
from infitool_edit.learn.split import held_out


def test_held_out_is_stable_and_about_one_in_ten():
    names = [f"src/ch{i:03}.md" for i in range(2000)]
    first = [held_out("rust-book", n) for n in names]
    assert first == [held_out("rust-book", n) for n in names]
    assert 150 < sum(first) < 250
    assert [held_out("peps", n) for n in names] != first  # the source is part of the key


def test_documents_come_from_a_bundle_split_by_whole_files(tmp_path, monkeypatch):
    repo = tmp_path / "book"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "src").mkdir()
    for i in range(40):
        (repo / "src" / f"ch{i:02}.md").write_text(f"# Chapter {i}\n\nText {i}.\n")
    (repo / "src" / "notes.txt").write_text("not prose we collect\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "book"], check=True)
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["git", "-C", str(repo), "bundle", "create", "-q", str(data / "rust-book.bundle"), "--all"], check=True)
    monkeypatch.setenv("INFITOOL_DATA", str(data))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    train = list(corpus.documents("train", sources=("rust-book",)))
    heldout = list(corpus.documents("heldout", sources=("rust-book",)))
    assert len(train) + len(heldout) == 40
    assert heldout and all(d.held_out for d in heldout) and not any(d.held_out for d in train)
    assert {d.licence for d in train} == {"MIT OR Apache-2.0"}
    assert train[0].text.startswith("# Chapter")
