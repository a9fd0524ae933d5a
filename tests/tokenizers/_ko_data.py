"""Korean test text: a short text written for these tests (public domain, CC0), and the Korean lines of
kiwipiepy's documentation (Apache-2.0, ships with the package) when kiwipiepy is installed."""

from __future__ import annotations

import re
from pathlib import Path

#: Written for tokembed's tests (CC0): verbs with fused endings (갔다, 했다, 주셨습니다), particles,
#: digits and Latin inside words, compatibility jamo (ㅋㅋㅋ) and punctuation.
KO_TEXT = """나는 어제 친구와 함께 도서관에 갔다.
우리는 한국어 문법에 관한 책을 읽었고, 점심으로 김밥을 먹었다.
형태소 분석기는 단어를 의미 있는 가장 작은 단위로 나눈다.
"했다"는 "하다"의 과거형이며, 어간과 어미로 이루어져 있다.
비가 오면 우리는 집에서 영화를 보거나 음악을 들을 것이다.
선생님께서 학생들에게 숙제를 내 주셨습니다.
이 문장에는 숫자 123과 영어 단어 tokenizer가 섞여 있어요.
아이들이 공원에서 뛰어놀고 있었는데 갑자기 하늘이 어두워졌다.
그녀는 매일 아침 일찍 일어나서 운동을 한다고 말했다.
컴퓨터가 자연어를 처리하려면 먼저 텍스트를 토큰으로 나누어야 합니다.
ㅋㅋㅋ 정말 재미있었어요!
서울에서 부산까지 기차로 세 시간쯤 걸립니다.
"""

#: The same kind of text in English and Finnish, line-aligned with KO_TEXT's first four lines (parallel text).
EN_TEXT = """Yesterday I went to the library with a friend.
We read a book about Korean grammar, and we ate gimbap for lunch.
A morphological analyzer splits words into the smallest units that carry meaning.
"Did" is the past tense of "do", made of a stem and an ending.
"""
FI_TEXT = """Menin eilen kirjastoon ystäväni kanssa.
Luimme kirjan korean kieliopista ja söimme lounaaksi gimbapia.
Morfologinen jäsennin jakaa sanat pienimpiin merkitystä kantaviin osiin.
"Teki" on verbin "tehdä" mennyt aikamuoto, ja siinä on vartalo ja pääte.
"""

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def korean_lines() -> list[str]:
    """KO_TEXT's lines, plus kiwipiepy's documentation lines that are at least 30% Hangul when it is installed."""
    lines = KO_TEXT.splitlines()
    try:
        import kiwipiepy
    except ImportError:
        return lines
    doc = Path(kiwipiepy.__file__).parent / "documentation.md"
    if doc.is_file():
        for ln in doc.read_text(encoding="utf-8").splitlines():
            ln = ln.strip()
            if ln and len(HANGUL.findall(ln)) >= 0.3 * len(ln):
                lines.append(ln)
    return lines
