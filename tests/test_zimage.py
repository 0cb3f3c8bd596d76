"""`vmconform.osprobe.zimage`: the armhf zImage's PE header made to declare its decompressor's heap, read back with
pefile, on a crafted zImage header and on Debian's armmp kernel (the one the OS probe boots)."""

import struct

import pefile
import pytest

from vmconform.osprobe.zimage import HEAP, ZimageError, declare_heap, footprint


def crafted(size_of_image: int = 0x5800, machine: int = 0x1C2) -> bytes:
    """A zImage-shaped PE32: MZ, the zImage magic at 0x24, .text at 0x1000 and .data ending at 0x5800."""
    out = bytearray(0x3000)
    out[:2] = b"MZ"
    struct.pack_into("<I", out, 0x24, 0x016F2818)
    struct.pack_into("<I", out, 0x3C, 0x40)
    out[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", out, 0x44, machine, 2, 0, 0, 0, 0xE0, 0x0102)
    opt = 0x58
    struct.pack_into("<HBBIIIIII", out, opt, 0x10B, 0, 0, 0x1000, 0x1000, 0, 0x1010, 0x1000, 0x4000)
    struct.pack_into("<IIIHHHHHHIIIIHH", out, opt + 28, 0, 0x1000, 0x200, 0, 0, 0, 0, 0, 0, 0, size_of_image,
                     0x400, 0, 10, 0)  # fmt: skip
    struct.pack_into("<I", out, opt + 92, 16)  # NumberOfRvaAndSizes (the directories, all empty, follow)
    table = opt + 0xE0
    for i, (name, vsize, va, rsize, roff) in enumerate(
        [(b".text", 0x3000, 0x1000, 0x1000, 0x400), (b".data", 0x1800, 0x4000, 0x200, 0x1400)]
    ):
        struct.pack_into("<8sIIIIIIHHI", out, table + 40 * i, name, vsize, va, rsize, roff, 0, 0, 0, 0, 0xC0000040)
    return bytes(out)


def test_the_heap_is_added_to_the_last_section_and_size_of_image_page_aligned():
    image = crafted()
    assert footprint(image) == (0x5800, 0x5800)
    grown = declare_heap(image)
    end = (0x5800 + HEAP + 0xFFF) & ~0xFFF
    assert footprint(grown) == (end, end) and len(grown) == len(image)
    pe = pefile.PE(data=grown)
    assert pe.OPTIONAL_HEADER.SizeOfImage == end and pe.OPTIONAL_HEADER.CheckSum == 0
    data = pe.sections[1]
    assert data.VirtualAddress + data.Misc_VirtualSize == end and data.SizeOfRawData == 0x200
    assert pe.sections[0].Misc_VirtualSize == 0x3000  # the code is where it was
    changed = [i for i in range(len(image)) if image[i] != grown[i]]
    assert all(0x58 + 56 <= i < 0x58 + 60 or 0x138 + 40 + 8 <= i < 0x138 + 40 + 12 for i in changed), changed


def test_a_size_of_image_larger_than_the_sections_is_kept_and_grown():
    assert footprint(declare_heap(crafted(size_of_image=0x8000), heap=0x1000)) == (0x9000, 0x9000)


@pytest.mark.parametrize(
    ("image", "why"),
    [
        (b"\x7fELF" + bytes(0x100), "no MZ header"),
        (b"MZ" + bytes(0x100), "not an ARM zImage"),
        (crafted(machine=0xAA64), "not PE32 for ARM"),
        (crafted()[:0x40], "no PE signature"),
    ],
)
def test_what_is_not_an_arm_zimage_is_refused_in_one_line(image, why):
    with pytest.raises(ZimageError, match=why) as e:
        declare_heap(image)
    assert "\n" not in str(e.value)


def test_debians_armmp_kernel_gets_its_heap_and_nothing_else_moves():
    from vmconform.assets.kernel import kernel
    from vmconform.osprobe.assets import MODULES

    image = kernel("arm", MODULES).image.read_bytes()
    size, end = footprint(image)
    grown = declare_heap(image)
    assert footprint(grown) == ((end + HEAP + 0xFFF) & ~0xFFF,) * 2 and size <= end
    before, after = pefile.PE(data=image), pefile.PE(data=grown)
    assert after.OPTIONAL_HEADER.AddressOfEntryPoint == before.OPTIONAL_HEADER.AddressOfEntryPoint
    assert [s.get_data() for s in after.sections] == [s.get_data() for s in before.sections]
