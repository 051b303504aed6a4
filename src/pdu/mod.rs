//! The SMPP 3.4 codec: frames, PDUs as borrowed views, TLVs, encoding. Pure: no I/O, no clock.
