#!/usr/bin/python3
"""Generates tests/data/tokenizer_vectors.txt: encode/decode cases computed by the
reference sentencepiece library, which tests/test_tokenizer.cpp replays against
smallcoder::Tokenizer.

Needs sentencepiece 0.1.97 (the version the golden data came from) and the Llama
tokenizer.model from the shared data folder:

    /usr/bin/python3 tools/gen_tokenizer_vectors.py [../shared/tokenizer/tokenizer.model]

Besides the model itself it builds "variants": the same model with normalizer flags
flipped or piece types/texts changed (user-defined, unused, no byte fallback), written
as a modified ModelProto and loaded into sentencepiece, so behaviours the Llama model
never exercises are still checked against the reference. The output is deterministic
(fixed seeds, no outside inputs besides the model).

File format (one record per line, fields separated by one space):
    # comment
    variant NAME [KEY=VALUE ...]   following cases use the base model changed so:
        add_dummy_prefix=0|1 remove_extra_whitespaces=0|1 escape_whitespaces=0|1
        byte_fallback=0|1 type=FIRST-LAST:T (pieces FIRST..LAST get PieceType T)
        piece=ID:HEX (piece ID's text becomes the hex-encoded bytes)
    encode HEX_TEXT IDS HEX_DECODED   encode(text) == IDS, decode(IDS) == decoded
    decode IDS HEX_TEXT               decode(IDS) == text
IDS are comma-separated decimal ids, "-" when empty. HEX is lower-case hex of the
UTF-8 bytes, "-" when empty.
"""
import os
import random
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'tests', 'data', 'tokenizer_vectors.txt')

# ---- just enough protobuf to rewrite a ModelProto (field numbers from
# sentencepiece_model.proto: ModelProto.pieces=1, trainer_spec=2, normalizer_spec=3;
# SentencePiece.piece=1, type=3; TrainerSpec.byte_fallback=35;
# NormalizerSpec.add_dummy_prefix=3, remove_extra_whitespaces=4, escape_whitespaces=5)


def read_varint(buf, pos):
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def write_varint(value):
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def parse_fields(buf):
    """[(number, wire, payload)] where payload is an int (varint) or bytes."""
    fields, pos = [], 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            payload, pos = read_varint(buf, pos)
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            payload, pos = buf[pos:pos + length], pos + length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            payload, pos = buf[pos:pos + width], pos + width
        else:
            raise ValueError('unexpected wire type %d' % wire)
        fields.append((number, wire, payload))
    return fields


def serialize(fields):
    out = bytearray()
    for number, wire, payload in fields:
        out += write_varint(number << 3 | wire)
        if wire == 0:
            out += write_varint(payload)
        elif wire == 2:
            out += write_varint(len(payload)) + payload
        else:
            out += payload
    return bytes(out)


def replace_field(fields, number, wire, payload):
    return [f for f in fields if f[0] != number] + [(number, wire, payload)]


class Variant:
    """The base model with some settings changed; `line` is its record in the output."""

    def __init__(self, name, normalizer=None, byte_fallback=None, types=(), pieces=()):
        self.name = name
        self.normalizer = normalizer or {}   # field name -> 0/1
        self.byte_fallback = byte_fallback
        self.types = list(types)             # (first, last, type)
        self.pieces = list(pieces)           # (id, text)

    def line(self):
        parts = ['variant', self.name]
        parts += ['%s=%d' % kv for kv in self.normalizer.items()]
        if self.byte_fallback is not None:
            parts.append('byte_fallback=%d' % self.byte_fallback)
        parts += ['type=%d-%d:%d' % t for t in self.types]
        parts += ['piece=%d:%s' % (i, text.encode().hex()) for i, text in self.pieces]
        return ' '.join(parts)

    def build(self, model_bytes):
        normalizer_fields = {'add_dummy_prefix': 3, 'remove_extra_whitespaces': 4, 'escape_whitespaces': 5}
        out, index = [], 0
        for number, wire, payload in parse_fields(model_bytes):
            if number == 1:
                piece = parse_fields(payload)
                for first, last, piece_type in self.types:
                    if first <= index <= last:
                        piece = replace_field(piece, 3, 0, piece_type)
                for i, text in self.pieces:
                    if i == index:
                        piece = replace_field(piece, 1, 2, text.encode())
                payload = serialize(piece)
                index += 1
            elif number == 2 and self.byte_fallback is not None:
                payload = serialize(replace_field(parse_fields(payload), 35, 0, self.byte_fallback))
            elif number == 3:
                spec = parse_fields(payload)
                for key, value in self.normalizer.items():
                    spec = replace_field(spec, normalizer_fields[key], 0, value)
                payload = serialize(spec)
            out.append((number, wire, payload))
        sp = spm.SentencePieceProcessor()
        sp.LoadFromSerializedProto(serialize(out))
        return sp

# ---- inputs


KEYWORDS = ['def', 'class', 'return', 'if', 'elif', 'else', 'for', 'while', 'in', 'not', 'and', 'or', 'import',
            'from', 'as', 'with', 'try', 'except', 'finally', 'lambda', 'yield', 'None', 'True', 'False', 'self',
            'int', 'void', 'const', 'auto', 'template', 'typename', 'std::vector', 'fn', 'let', 'mut', 'pub',
            'function', 'var', 'async', 'await', 'SELECT', 'FROM', 'WHERE', '#include', 'printf', 'console.log']
IDENTS = ['x', 'y', 'i', 'n', 'arr', 'data', 'result', 'user_id', 'fetchData', 'HTTPServer', '__init__', 'my_var2',
          'kMaxSize', 'tmp', 'quicksort', 'fibonacci', 'LinkedList', 'node', 'value', 'key', 'é', 'naïve', 'données']
OPERATORS = ['=', '==', '!=', '+', '-', '*', '/', '//', '%', '**', '->', '=>', '::', '.', ',', ':', ';', '(', ')',
             '[', ']', '{', '}', '<', '>', '<=', '>=', '&&', '||', '!', '&', '|', '^', '~', '<<', '>>', '+=', '@',
             '"', "'", '`', '#', '\\', '?', '...']
LITERALS = ['0', '1', '42', '3.14159', '1e-6', '0x1F', '0b1010', '"hello"', "'world'", 'f"{x}"', '""', "r'\\d+'",
            '"\\n"', '1_000_000', '-1', '255']
SPECIALS = ['<s>', '</s>', '<unk>', '<pad>', '<0x41>', '<0x0A>', '<0xFF>', '<0x00>', '<0xzz>', '<0x4>', '<0x41',
            '\u2581', '\u2581\u2581', '[INST]', '[/INST]', '<<SYS>>', '<|endoftext|>', '<mask>', '<', '>', '</']
WHITESPACE = [' ', '  ', '    ', '\t', '\n', '\r\n', '\r', '\n\n', '\v', '\f', '\u00a0', '\u3000', '\u2003', '\u2581']


def random_code(rng):
    parts = []
    for _ in range(rng.randint(1, 40)):
        roll = rng.random()
        if roll < 0.25:
            parts.append(rng.choice(KEYWORDS))
        elif roll < 0.5:
            parts.append(rng.choice(IDENTS))
        elif roll < 0.7:
            parts.append(rng.choice(OPERATORS))
        elif roll < 0.8:
            parts.append(rng.choice(LITERALS))
        elif roll < 0.9:
            parts.append('\n' + ' ' * rng.choice([0, 2, 4, 8, 12]))
        else:
            parts.append('# ' + rng.choice(['TODO', 'fix this', 'O(n log n)', 'ça marche', '注意', '✓ done']))
        parts.append(rng.choice(['', ' ', ' ', ' ', '  ']))
    return ''.join(parts)


UNICODE_RANGES = [
    (0x20, 0x7E), (0x00, 0x1F), (0x7F, 0x9F), (0xA0, 0xFF), (0x100, 0x24F), (0x300, 0x36F),  # combining marks
    (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F),
    (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x21FF), (0x2500, 0x259F), (0x3040, 0x30FF), (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0xFE00, 0xFE0F), (0xFF00, 0xFFEF), (0xFFF0, 0xFFFF),
    (0x1F300, 0x1FAFF), (0x10000, 0x1FFFF), (0x20000, 0x2FFFF), (0xE0000, 0xE007F), (0x100000, 0x10FFFF),
]


def random_char(rng):
    while True:
        first, last = rng.choice(UNICODE_RANGES)
        c = rng.randint(first, last)
        if 0xD800 <= c <= 0xDFFF:
            continue
        return chr(c)


def random_unicode(rng):
    out = []
    for _ in range(rng.randint(1, 30)):
        roll = rng.random()
        if roll < 0.55:
            out.append(random_char(rng))
        elif roll < 0.7:
            out.append(rng.choice(WHITESPACE))
        elif roll < 0.8:  # emoji with modifiers / ZWJ sequences
            out.append(rng.choice(['\U0001F600', '\U0001F680', '\U0001F44D\U0001F3FD', '\U0001F468\u200d\U0001F4BB',
                                   '\u2764\ufe0f', '\U0001F1EF\U0001F1F5', '#\ufe0f\u20e3']))
        elif roll < 0.9:  # base letter + combining marks
            out.append(rng.choice('aeiouAEnc') + ''.join(chr(rng.randint(0x300, 0x36F))
                                                      for _ in range(rng.randint(1, 3))))
        else:
            out.append(rng.choice(['漢字', 'かな', '한국어', 'Привет', 'مرحبا', 'שלום', 'Ελληνικά', 'नमस्ते']))
    return ''.join(out)


def random_whitespace(rng):
    parts = [rng.choice(WHITESPACE) * rng.randint(1, 6) if rng.random() < 0.5 else rng.choice(['a', 'x', 'if', '1'])
             for _ in range(rng.randint(1, 12))]
    return ''.join(parts)


def random_specials(rng):
    return ''.join(rng.choice(SPECIALS + [' ', ' ', 'text', '\n']) for _ in range(rng.randint(1, 12)))


def random_ascii(rng):
    return ''.join(chr(rng.randint(0x20, 0x7E)) for _ in range(rng.randint(1, 60)))


def fixed_texts():
    return ['', ' ', '  ', '\t', '\n', '\r\n', 'a', ' a', 'a ', '  a  b  ', '\u2581', '\u2581\u2581x', ' \u2581 ',
            'x' * 200, ' ' * 40, '\n' * 17, '\t' * 9, 'ab' * 60, '\u00e9' * 30, '\U0001F600' * 7,
            'def f():\n    return 1\n', 'a\u0301\u0302\u0303', '\ufeffBOM', '\uffff\ufffe\ufffd',
            '\U0010ffff\U000e0001', '\x00\x01\x1f\x7f', '<s>x</s>', '<0x41><0x42>', 'Hello, World!',
            'if x:\n\tpass\r\n']


def random_decode_ids(rng, sp):
    """Id sequences that stress decoding: byte runs with valid and broken UTF-8,
    control pieces in the middle of byte runs, leading space pieces."""
    vocab = sp.get_piece_size()
    byte_id = {b: sp.piece_to_id('<0x%02X>' % b) for b in range(256)}
    space_pieces = [i for i in range(vocab) if sp.id_to_piece(i).startswith('\u2581')]
    ids = []
    if rng.random() < 0.3:
        ids.append(rng.choice([0, 1, 2]))
    if rng.random() < 0.4:
        ids.append(rng.choice(space_pieces + [sp.piece_to_id('\u2581')]))
    for _ in range(rng.randint(1, 12)):
        roll = rng.random()
        if roll < 0.3:
            ids.append(rng.randrange(vocab))
        elif roll < 0.55:  # a valid character as bytes, maybe cut short
            encoded = random_char(rng).encode()
            if rng.random() < 0.3:
                encoded = encoded[:rng.randint(1, len(encoded))]
            ids += [byte_id[b] for b in encoded]
        elif roll < 0.75:  # random bytes: overlong forms, surrogates, stray continuations
            ids += [byte_id[rng.choice([rng.randrange(256), 0xC0, 0xC1, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF, 0x80,
                                        0xBF, 0x9F, 0xA0, 0x8F, 0x90])] for _ in range(rng.randint(1, 6))]
        elif roll < 0.85:
            ids.append(rng.choice([0, 1, 2]))
        else:
            ids.append(rng.choice(space_pieces))
    return ids


def fixed_decode_ids(sp):
    p = sp.piece_to_id
    byte = lambda b: p('<0x%02X>' % b)
    return [[], [1], [1, 2], [0], [1, p('\u2581Hello')], [1, 1, p('\u2581Hello')], [0, p('\u2581Hello')],
            [byte(0x41), p('\u2581Hello')], [p('\u2581'), p('\u2581Hello')], [p('\u2581\u2581'), p('\u2581x')],
            [2, p('\u2581')], [byte(0xE2), byte(0x96), byte(0x81), p('\u2581Hello')],
            [byte(0xE2), byte(0x96)], [byte(0xE2), 1, byte(0x96), byte(0x81)],
            [byte(0xF0), byte(0x9F), byte(0x98), byte(0x80)], [byte(0xF0), byte(0x9F), byte(0x98)],
            [byte(b) for b in [0xC0, 0x80, 0xED, 0xA0, 0x80, 0xEF, 0xBF, 0xBD, 0xFF]],
            [byte(b) for b in [0xE0, 0x9F, 0xBF, 0xE0, 0xA0, 0x80, 0xF4, 0x90, 0x80, 0x80, 0xF4, 0x8F, 0xBF, 0xBF]],
            [byte(b) for b in [0xF0, 0x8F, 0xBF, 0xBF, 0xF0, 0x90, 0x80, 0x80, 0xC2, 0x41, 0xC2]],
            [p('\u2581Hello'), byte(0xE2), p('\u2581world'), byte(0x82), byte(0xAC)],
            # leading space pieces: how many lose their space depends on remove_extra_whitespaces
            [p('\u2581'), p('\u2581'), p('\u2581Hello')], [p('\u2581'), 1, p('\u2581Hello')],
            [p('\u2581'), p('\u2581\u2581'), p('\u2581x')], [p('\u2581'), byte(0x41), p('\u2581Hello')],
            [p('\u2581'), 0, p('\u2581Hello')], [p('\u2581'), byte(0xE2), byte(0x96), byte(0x81), p('\u2581x')],
            [p('\u2581'), p('x'), p('\u2581y')], [1, p('\u2581'), p('\u2581'), 2, p('\u2581\u2581'), p('\u2581')]]


def emit_variant_cases(sp, rng, out, encode_count, decode_count):
    texts = fixed_texts()
    makers = [random_code, random_unicode, random_whitespace, random_specials, random_ascii]
    while len(texts) < encode_count:
        texts.append(rng.choice(makers)(rng))
    for text in texts:
        ids = sp.encode(text)
        out.append('encode %s %s %s' % (hexs(text), id_list(ids), hexs(sp.decode(ids))))
    decodes = fixed_decode_ids(sp)
    while len(decodes) < decode_count:
        decodes.append(random_decode_ids(rng, sp))
    for ids in decodes:
        out.append('decode %s %s' % (id_list(ids), hexs(sp.decode(ids))))


def hexs(text):
    return text.encode('utf-8').hex() or '-'


def id_list(ids):
    return ','.join(map(str, ids)) or '-'


def main():
    model_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, '..', '..', 'shared', 'tokenizer',
                                                                    'tokenizer.model')
    model_bytes = open(model_path, 'rb').read()
    base = spm.SentencePieceProcessor(model_proto=model_bytes)
    assert spm.__version__ == '0.1.97', 'the golden data came from sentencepiece 0.1.97, not ' + spm.__version__
    p = base.piece_to_id
    ids_of = lambda *pieces: [p(x) for x in pieces]
    user_defined = [(i, i, 4) for i in ids_of('def', 'ing', '\u2581\u2581', '(', '\u2581def', '):', 'self')]
    renamed = [(p('ingham'), 'x  y'), (p('ington'), ' '), (p('ingers'), 'q '), (p('ingly'), '<pad>'),
               (p('ingu'), '\u2581a\u2581b')]
    rng_unused = random.Random(7)
    unused = [(i, i, 5) for i in ids_of('\u2581def', 'ing', '\u2581the', 'tion', '\u2581return', 'self', 'er', '\u2581(',
                                         '\u2581\u2581\u2581\u2581', '\u2581\u2581')]
    unused += [(i, i, 5) for i in sorted(rng_unused.sample(range(300, 32000), 1500))]
    variants = [
        (Variant('llama'), 330, 130),
        (Variant('squeeze_spaces', {'remove_extra_whitespaces': 1}), 40, 40),
        (Variant('no_escape', {'escape_whitespaces': 0}), 30, 10),
        (Variant('no_dummy_prefix', {'add_dummy_prefix': 0}), 30, 15),
        (Variant('no_dummy_prefix_squeeze', {'add_dummy_prefix': 0, 'remove_extra_whitespaces': 1}), 25, 35),
        (Variant('no_byte_fallback', byte_fallback=0, types=[(3, 258, 3)]), 40, 10),
        (Variant('user_defined', types=user_defined + [(i, i, 4) for i, _ in renamed], pieces=renamed), 40, 10),
        (Variant('user_defined_squeeze', {'remove_extra_whitespaces': 1},
                 types=user_defined + [(i, i, 4) for i, _ in renamed], pieces=renamed), 30, 5),
        (Variant('unused', types=unused), 50, 10),
    ]
    out = ['# Generated by tools/gen_tokenizer_vectors.py with sentencepiece %s; do not edit.' % spm.__version__,
           '# Format: see the docstring of that script.']
    for index, (variant, encode_count, decode_count) in enumerate(variants):
        sp = variant.build(model_bytes)
        out.append(variant.line())
        rng = random.Random(1000 + index)
        emit_variant_cases(sp, rng, out, encode_count, decode_count)
        if variant.name == 'llama':  # one long input, several thousand tokens
            text = ''.join(rng.choice([random_code, random_unicode])(rng) for _ in range(60))
            ids = sp.encode(text)
            out.append('encode %s %s %s' % (hexs(text), id_list(ids), hexs(sp.decode(ids))))
        if variant.name.startswith('user_defined'):  # texts that hit the renamed pieces
            for text in ['x  y', '  x  y  ', 'a x  y b', ' ', '   z', 'q  r', 'q ', '<pad>', '<pad><s>', 'def f(self):',
                         '\u2581a\u2581b', ' a b', 'ingingdef', '  define   ing']:
                ids = sp.encode(text)
                out.append('encode %s %s %s' % (hexs(text), id_list(ids), hexs(sp.decode(ids))))
    text = '\n'.join(out) + '\n'
    with open(OUT, 'w', encoding='ascii') as f:
        f.write(text)
    print('wrote %s: %d records, %d bytes' % (OUT, len(out), len(text)))


if __name__ == '__main__':
    main()
