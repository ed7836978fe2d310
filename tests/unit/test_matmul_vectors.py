"""Published test vectors for SPEC §7.2, computed by a slow, obviously-correct pure-Python reference.

The reference below follows the spec's definitions line by line on Python integers (masking to 32
bits after each step) and shares no code with the fast numpy/torch paths. The constants here are the
ones in docs/challenges.md; both the reference and the fast code must reproduce them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from function_node.challenges.matmul.commitment import MerkleTree, row_digests_np
from function_node.challenges.matmul.compute import NumpyBackend
from function_node.challenges.matmul.generate import Seed, generate_matrix_np

M32 = 0xFFFFFFFF


def ref_fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def ref_words(seed: bytes) -> list[int]:
    return [int.from_bytes(seed[4 * i : 4 * i + 4], "big") for i in range(8)]


def ref_matrix(n: int, k0: int, k1: int) -> list[list[int]]:
    out = []
    for r in range(n):
        row = []
        for c in range(n):
            idx = (r * n + c) & M32
            h = ref_fmix32(ref_fmix32(idx ^ k0) ^ k1)
            row.append((h >> 24) - 128)
        out.append(row)
    return out


def ref_matmul(a: list[list[int]], b: list[list[int]]) -> list[list[int]]:
    n = len(a)
    return [[sum(a[i][k] * b[k][j] for k in range(n)) for j in range(n)] for i in range(n)]


def ref_row_digest(row: list[int], w4: int, w5: int) -> int:
    total = 0
    for j, value in enumerate(row):
        key = ref_fmix32(j ^ w4)
        total += ref_fmix32((value & M32) ^ key ^ w5)
    return total % (1 << 64)


def ref_root(digests: list[int]) -> bytes:
    level = [
        hashlib.sha256(b"\x00" + i.to_bytes(4, "big") + d.to_bytes(8, "big")).digest()
        for i, d in enumerate(digests)
    ]
    size = 1
    while size < len(level):
        size *= 2
    level += [hashlib.sha256(b"\x02").digest()] * (size - len(level))
    while len(level) > 1:
        level = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


def ref_all(
    seed: bytes, n: int
) -> tuple[list[list[int]], list[list[int]], list[list[int]], list[int], bytes]:
    w = ref_words(seed)
    a = ref_matrix(n, w[0], w[1])
    b = ref_matrix(n, w[2], w[3])
    c = ref_matmul(a, b)
    digests = [ref_row_digest(row, w[4], w[5]) for row in c]
    return a, b, c, digests, ref_root(digests)


SEED_4 = bytes(range(32))
SEED_5 = hashlib.sha256(b"fxn-matmul-vector-5").digest()
SEED_64 = hashlib.sha256(b"fxn-matmul-vector-64").digest()

# --- the published vectors (docs/challenges.md, "Test vectors") ---------------------------------------

A_4 = [[127, -59, 1, -44], [66, -61, -29, -118], [-37, -90, -10, -56], [-120, 90, -113, -92]]
B_4 = [[-85, -49, 112, -48], [-25, -104, -26, -107], [74, 90, -72, 46], [107, 115, 69, 42]]
C_4 = [
    [-13954, -5057, 12650, -1585],
    [-18857, -13070, 2924, -2931],
    [-1337, 3833, -4948, 8594],
    [-10256, -24230, -13992, -12932],
]
DIGESTS_4 = [10334721392, 6759133012, 11808928571, 10242236126]
ROOT_4 = "0x81ba75b9397ddc26eab3b451a76e0419142eb13871a48f4112d98452d8d0362a"
DIGESTS_5 = [12789364060, 9004727004, 11078834378, 13039318071, 13516972998]
ROOT_5 = "0xe5f9b922a64878061703d7786cc32e89b55c9c5bb9158c8832124e23dbdbd536"
DIGESTS_64 = [
    123149062512,
    142574298585,
    131986009008,
    143385946993,
    122882650281,
    138786602852,
    151591405328,
    142060938271,
    140671253576,
    114558397950,
    130912824425,
    152858649933,
    133954130221,
    138117133826,
    121699510134,
    131606141467,
    137693131331,
    132645093102,
    142860326184,
    131940947100,
    141446520752,
    124349146003,
    131229283704,
    140585596204,
    158295577629,
    136977163000,
    142310749858,
    131436236893,
    140340563945,
    147303991201,
    124287908496,
    150685258905,
    138067139683,
    144174401274,
    128606586792,
    130193732579,
    133382308695,
    145978290551,
    130458667889,
    154356621088,
    142067348940,
    131926997063,
    143666225008,
    124830825390,
    136348914037,
    132600338741,
    147520905746,
    137686430094,
    140154172227,
    129877417323,
    150801756105,
    134012360687,
    139234409784,
    133333547508,
    119363665925,
    136500110545,
    147993161924,
    140051829903,
    149721534703,
    136742340839,
    119745787929,
    138162476051,
    135575031227,
    139416865012,
]
ROOT_64 = "0x6c935a4753749b69b50fd9835adf15cdc15179c3b8e9495496426b765b570f9e"

VECTORS = [
    (SEED_4, 4, DIGESTS_4, ROOT_4),
    (SEED_5, 5, DIGESTS_5, ROOT_5),
    (SEED_64, 64, DIGESTS_64, ROOT_64),
]


def test_seed_hex_of_published_vectors() -> None:
    assert SEED_4.hex() == "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    assert SEED_5.hex() == "dd02de8b6dee9f2cfd90d7c4d4f00f409e47b1a6b1f96012caa4390bc6f505ee"
    assert SEED_64.hex() == "7fd1e362749bdff12dc0300945a15fd913bc8617631d1a12d729ee020da3d1b2"


def test_reference_reproduces_the_n4_matrices() -> None:
    a, b, c, digests, root = ref_all(SEED_4, 4)
    assert (a, b, c) == (A_4, B_4, C_4)
    assert digests == DIGESTS_4
    assert "0x" + root.hex() == ROOT_4


@pytest.mark.parametrize(("seed", "n", "digests", "root"), VECTORS)
def test_reference_reproduces_digests_and_root(seed: bytes, n: int, digests: list[int], root: str) -> None:
    _, _, _, ref_digests, ref_root_bytes = ref_all(seed, n)
    assert ref_digests == digests
    assert "0x" + ref_root_bytes.hex() == root


def test_fast_generator_matches_the_n4_matrices() -> None:
    s = Seed(SEED_4)
    assert generate_matrix_np(4, s.a_keys).tolist() == A_4
    assert generate_matrix_np(4, s.b_keys).tolist() == B_4


@pytest.mark.parametrize(("seed", "n", "digests", "root"), VECTORS)
def test_numpy_backend_matches_vectors(seed: bytes, n: int, digests: list[int], root: str) -> None:
    result = NumpyBackend().compute(n, Seed(seed))
    assert result.digests.tolist() == digests
    assert "0x" + MerkleTree.build(result.digests.tolist()).root.hex() == root


@pytest.mark.parametrize(("seed", "n", "digests", "root"), VECTORS)
def test_torch_cpu_backend_matches_vectors(seed: bytes, n: int, digests: list[int], root: str) -> None:
    pytest.importorskip("torch")
    from function_node.challenges.matmul.compute import TorchBackend

    result = TorchBackend("cpu").compute(n, Seed(seed))
    assert result.digests.tolist() == digests
    assert "0x" + MerkleTree.build(result.digests.tolist()).root.hex() == root


def test_row_digest_of_negative_values_uses_twos_complement() -> None:
    # uint32(C[i][j]) of a negative int32 is its two's complement; -1 becomes 0xFFFFFFFF.
    row = [-1, 0, 2**31 - 1, -(2**31)]
    expected = ref_row_digest(row, 7, 9)
    assert row_digests_np(np.array([row], dtype=np.int64), 7, 9).tolist() == [expected]


def test_reference_and_fast_generator_agree_on_a_rectangle_of_rows() -> None:
    # Wide keys exercise the XOR with high bits set.
    keys = (0xFFFFFFFF, 0x80000000)
    fast = generate_matrix_np(17, keys)
    assert fast.tolist() == ref_matrix(17, *keys)
