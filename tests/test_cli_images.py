"""Image paths typed into the REPL prompt are picked up as `ollama run` does."""
from ggsight.cli_run import extract_images


def test_paths_plain_quoted_and_escaped(tmp_path):
    a = tmp_path / "cat.png"
    b = tmp_path / "my dog.JPG"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    esc = str(b).replace(" ", "\\ ")
    text, found = extract_images(f"what is in {a} and '{b}'?")
    assert found == [str(a), str(b)] and text == "what is in and ?"
    text, found = extract_images(f'compare "{b}" with {esc} please')
    assert found == [str(b), str(b)] and text == "compare with please"


def test_missing_files_stay_as_text(tmp_path):
    prompt = f"is {tmp_path / 'nope.png'} a file? what about pic.webp"
    assert extract_images(prompt) == (prompt, [])
    assert extract_images("no images here") == ("no images here", [])
