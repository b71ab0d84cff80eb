"""What travels between gateway and centre: envelopes, canonical encoding, signatures. Pure.

Imports nothing of ours (the gateway and the centre both import it); no asyncio, no sockets,
no clocks - times are arguments::

    from wire import Batch, Ack, BATCH_TYPE, seal, open_sealed, encode, decode
"""

from wire.canonical import decode, encode, is_canonical
from wire.envelopes import (
    BATCH_TYPE,
    COMMAND_TYPE,
    EVENT_FIELDS,
    MAX_BATCH_EVENTS,
    WIRE_VERSION,
    Ack,
    Batch,
    ChainHead,
    check_event,
    gaps_between,
    holes,
)
from wire.errors import EncodingError, EnvelopeError, SignatureError, WireError
from wire.signing import (
    check_key_id,
    key_id,
    load_public_key_pem,
    open_sealed,
    public_key_pem,
    seal,
    sign,
    signed_bytes,
    split_envelope,
    split_sealed,
    verify,
    verify_signed,
)

__all__ = [
    "BATCH_TYPE",
    "COMMAND_TYPE",
    "EVENT_FIELDS",
    "MAX_BATCH_EVENTS",
    "WIRE_VERSION",
    "Ack",
    "Batch",
    "ChainHead",
    "EncodingError",
    "EnvelopeError",
    "SignatureError",
    "WireError",
    "check_event",
    "check_key_id",
    "decode",
    "encode",
    "gaps_between",
    "holes",
    "is_canonical",
    "key_id",
    "load_public_key_pem",
    "open_sealed",
    "public_key_pem",
    "seal",
    "sign",
    "signed_bytes",
    "split_envelope",
    "split_sealed",
    "verify",
    "verify_signed",
]
