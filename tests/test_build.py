"""The build: exactly the files a board holds, compiled for the board's arch."""

import gzip
import hashlib
import json
import os

import pytest

from conftest import ROOT, run_vm
from tools import ToolError, build

# .mpy header byte 2: the native arch in its top bits (py/persistentcode.h);
# mpy-cross records it only in modules that hold native/viper code (0 = none).
MPY_ARCH = {"x64": 2, "xtensawin": 10}


@pytest.fixture(scope="module")
def esp32cam():
    return build.build("esp32cam", log=lambda *a: None)


def _arch(path):
    with open(path, "rb") as f:
        head = f.read(4)
    assert head[0] == ord("M"), path
    return head[2] >> 2


def test_every_module_is_mpy_for_the_boards_arch(esp32cam, vboard_fs):
    for board_id, fs in (("esp32cam", build.fs_dir("esp32cam")), ("vboard", vboard_fs)):
        from tools import boards
        arch = boards.get(board_id)["arch"]
        py, mpy = [], []
        for dirpath, _, names in os.walk(fs):
            for n in names:
                rel = os.path.relpath(os.path.join(dirpath, n), fs)
                (py if n.endswith(".py") else mpy if n.endswith(".mpy") else []).append(rel)
        assert sorted(py) == ["boot.py", "main.py"], board_id
        assert "lib/microdot/microdot.mpy" in mpy and "lib/microdot/sse.mpy" in mpy
        for rel in mpy:
            assert _arch(os.path.join(fs, rel)) in (0, MPY_ARCH[arch]), (board_id, rel)


@pytest.mark.parametrize("arch", sorted(MPY_ARCH))
def test_viper_code_is_compiled_for_the_target_arch(arch, tmp_path):
    src = tmp_path / "v.py"
    src.write_text("@micropython.viper\ndef f(x: int) -> int:\n    return x + 1\n")
    build.compile_mpy(str(src), str(tmp_path / "v.mpy"), arch, "v.py")
    assert _arch(tmp_path / "v.mpy") == MPY_ARCH[arch]


@pytest.mark.parametrize("module,chips", sorted(build.BOARD_LAYER.items()))
def test_board_layers_go_only_to_their_chips(module, chips, esp32cam, vboard_fs):
    mpy = module[:-3] + ".mpy"
    assert os.path.exists(os.path.join(ROOT, "firmware", module)), module
    assert os.path.exists(os.path.join(build.fs_dir("esp32cam"), mpy)) == ("esp32" in chips)
    assert os.path.exists(os.path.join(vboard_fs, mpy)) == ("unix" in chips)


def test_manifest_matches_the_tree(esp32cam):
    fs = build.fs_dir("esp32cam")
    listed = {e["path"]: e for e in esp32cam["files"]}
    on_disk = set()
    for dirpath, _, names in os.walk(fs):
        for n in names:
            on_disk.add(os.path.relpath(os.path.join(dirpath, n), fs))
    assert set(listed) == on_disk
    for rel, e in listed.items():
        data = open(os.path.join(fs, rel), "rb").read()
        assert e["size"] == len(data) and e["sha256"] == hashlib.sha256(data).hexdigest()
    board = json.load(open(os.path.join(fs, "board.json")))
    assert board["id"] == "esp32cam" and board["camera"]["xclk"] == 0


def test_web_assets_are_gzipped_with_etags(vboard_fs):
    assets = json.load(open(os.path.join(vboard_fs, "web", "assets.json")))
    assert "index.html" in assets
    for name, meta in assets.items():
        raw = gzip.decompress(open(os.path.join(vboard_fs, "web", name + ".gz"), "rb").read())
        assert raw == open(os.path.join(ROOT, "web", name), "rb").read()
        assert meta["etag"] == hashlib.sha256(raw).hexdigest()[:16]


def test_rebuild_is_byte_identical(vboard_fs):
    before = json.load(open(os.path.join(build.build_dir("vboard"), "manifest.json")))
    after = build.build("vboard", log=lambda *a: None)
    assert before == after


def test_a_module_that_does_not_compile_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\ndef broken(:\n    pass\n")
    with pytest.raises(ToolError) as err:
        build.compile_mpy(str(bad), str(tmp_path / "bad.mpy"), "xtensawin", "camwatch/bad.py")
    msg = str(err.value)
    assert "-march=xtensawin" in msg and "bad.py\", line 2" in msg and "SyntaxError" in msg


def test_romfs_image_mounts_on_the_vm(tmp_path):
    img = build.build_romfs("vboard", str(tmp_path / "romfs.img"), log=lambda *a: None)
    code = ("import vfs, sys\n"
            "vfs.mount(vfs.VfsRom(open(%r, 'rb').read()), '/rom')\n"
            "sys.path[:0] = ['/rom/lib', '/rom']\n"
            "import microdot, camwatch\n"
            "print(microdot.__file__, camwatch.__file__, camwatch.__version__)\n" % img)
    # the image is read into the VM's heap (a board maps it from flash):
    # raise the cap by as much, as the virtual board does
    from tools.boards import get
    from tools.vboard import rom_extra

    heap = get("vboard")["heap"]["vm_bytes"] + rom_extra(os.path.getsize(img))
    r = run_vm(["-c", code], "/nonexistent", heap=heap)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["/rom/lib/microdot/__init__.mpy", "/rom/camwatch/__init__.mpy",
                                build.app_version()]
