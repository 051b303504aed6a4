//! What the customer reads: GSM 03.38, Latin-1, IA5 and UCS-2 coding, part planning, the counter, and inbound reassembly. Pure.
