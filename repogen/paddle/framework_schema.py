"""Wire types of Paddle's framework.proto, generated from protobuf's descriptor by
gen_framework_schema.py (do not edit).

FIELDS[message][field number] = (bit mask of the allowed wire types, what the payload is: a message
name, "varint"/"fixed32"/"fixed64" for a packed repeated scalar, or None); REQUIRED[message] = the
fields proto2 marks required; ENUMS the values of enum fields."""

FIELDS: dict[str, dict[int, tuple[int, str | None]]] = {
    'BlockDesc': {
        1: (0x01, None),
        2: (0x01, None),
        3: (0x04, 'VarDesc'),
        4: (0x04, 'OpDesc'),
        5: (0x01, None),
    },
    'Complex': {
        1: (0x02, None),
        2: (0x02, None),
    },
    'OpDesc': {
        1: (0x04, 'OpDesc.Var'),
        2: (0x04, 'OpDesc.Var'),
        3: (0x04, None),
        4: (0x04, 'OpDesc.Attr'),
        5: (0x01, None),
    },
    'OpDesc.Attr': {
        1: (0x04, None),
        2: (0x01, None),
        3: (0x01, None),
        4: (0x20, None),
        5: (0x04, None),
        6: (0x05, 'varint'),
        7: (0x24, 'fixed32'),
        8: (0x04, None),
        10: (0x01, None),
        11: (0x05, 'varint'),
        12: (0x01, None),
        13: (0x01, None),
        14: (0x05, 'varint'),
        15: (0x05, 'varint'),
        16: (0x06, 'fixed64'),
        17: (0x04, None),
        18: (0x04, None),
        19: (0x02, None),
        20: (0x04, 'Scalar'),
        21: (0x04, 'Scalar'),
    },
    'OpDesc.Var': {
        1: (0x04, None),
        2: (0x04, None),
    },
    'OpProto': {
        1: (0x04, None),
        2: (0x04, 'OpProto.Var'),
        3: (0x04, 'OpProto.Var'),
        4: (0x04, 'OpProto.Attr'),
        5: (0x04, None),
    },
    'OpProto.Attr': {
        1: (0x04, None),
        2: (0x01, None),
        3: (0x04, None),
        4: (0x01, None),
        5: (0x01, None),
        6: (0x01, None),
        7: (0x01, None),
    },
    'OpProto.Var': {
        1: (0x04, None),
        2: (0x04, None),
        3: (0x01, None),
        4: (0x01, None),
        5: (0x01, None),
        6: (0x01, None),
        7: (0x01, None),
    },
    'OpVersion': {
        1: (0x01, None),
    },
    'OpVersionMap': {
        1: (0x04, 'OpVersionMap.OpVersionPair'),
    },
    'OpVersionMap.OpVersionPair': {
        1: (0x04, None),
        2: (0x04, 'OpVersion'),
    },
    'ProgramDesc': {
        1: (0x04, 'BlockDesc'),
        4: (0x04, 'Version'),
        5: (0x04, 'OpVersionMap'),
    },
    'Scalar': {
        1: (0x01, None),
        2: (0x01, None),
        3: (0x01, None),
        4: (0x02, None),
        5: (0x04, 'Complex'),
    },
    'VarDesc': {
        1: (0x04, None),
        2: (0x04, 'VarType'),
        3: (0x01, None),
        4: (0x01, None),
        5: (0x01, None),
        6: (0x01, None),
        7: (0x04, 'VarDesc.Attr'),
    },
    'VarDesc.Attr': {
        1: (0x04, None),
        2: (0x01, None),
        3: (0x01, None),
        4: (0x04, None),
        5: (0x05, 'varint'),
    },
    'VarType': {
        1: (0x01, None),
        2: (0x04, 'VarType.TensorDesc'),
        3: (0x04, 'VarType.DenseTensorDesc'),
        4: (0x04, 'VarType.DenseTensorArrayDesc'),
        5: (0x04, 'VarType.ReaderDesc'),
        7: (0x04, 'VarType.Tuple'),
        8: (0x04, 'VarType.TensorDesc'),
        9: (0x04, 'VarType.TensorDesc'),
        10: (0x04, 'VarType.TensorDesc'),
        11: (0x04, 'VarType.TensorDesc'),
        12: (0x04, 'VarType.TensorDesc'),
    },
    'VarType.DenseTensorArrayDesc': {
        1: (0x04, 'VarType.TensorDesc'),
        2: (0x01, None),
    },
    'VarType.DenseTensorDesc': {
        1: (0x04, 'VarType.TensorDesc'),
        2: (0x01, None),
    },
    'VarType.ReaderDesc': {
        1: (0x04, 'VarType.DenseTensorDesc'),
    },
    'VarType.TensorDesc': {
        1: (0x01, None),
        2: (0x05, 'varint'),
    },
    'VarType.Tuple': {
        1: (0x05, 'varint'),
    },
    'Version': {
        1: (0x01, None),
    },
}

REQUIRED: dict[str, frozenset[int]] = {
    'BlockDesc': frozenset({1, 2}),
    'Complex': frozenset({1, 2}),
    'OpDesc': frozenset({3}),
    'OpDesc.Attr': frozenset({1, 2}),
    'OpDesc.Var': frozenset({1}),
    'OpProto': frozenset({1, 5}),
    'OpProto.Attr': frozenset({1, 2, 3}),
    'OpProto.Var': frozenset({1, 2}),
    'OpVersion': frozenset({1}),
    'OpVersionMap': frozenset(),
    'OpVersionMap.OpVersionPair': frozenset({1, 2}),
    'ProgramDesc': frozenset(),
    'Scalar': frozenset({1}),
    'VarDesc': frozenset({1, 2}),
    'VarDesc.Attr': frozenset({1, 2}),
    'VarType': frozenset({1}),
    'VarType.DenseTensorArrayDesc': frozenset({1}),
    'VarType.DenseTensorDesc': frozenset({1}),
    'VarType.ReaderDesc': frozenset(),
    'VarType.TensorDesc': frozenset({1}),
    'VarType.Tuple': frozenset(),
    'Version': frozenset(),
}

# ENUMS[message][field number] = the values its (closed, proto2) enum declares
ENUMS: dict[str, dict[int, frozenset[int]]] = {
    'OpDesc.Attr': {
        2: frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}),
    },
    'OpProto.Attr': {
        2: frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}),
    },
    'Scalar': {
        1: frozenset({1, 2, 3, 4}),
    },
    'VarDesc.Attr': {
        2: frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}),
    },
    'VarType': {
        1: frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 36, 37, 38}),
    },
    'VarType.TensorDesc': {
        1: frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 36, 37, 38}),
    },
    'VarType.Tuple': {
        1: frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 36, 37, 38}),
    },
}
