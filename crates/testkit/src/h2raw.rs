//! Hand-made HTTP/2 frames, for attacks a well-behaved client library will
//! not send (rapid reset, CONTINUATION floods).

/// The client connection preface and an empty SETTINGS frame.
pub fn preface() -> Vec<u8> {
    let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    v.extend(frame(0x4, 0, 0, &[]));
    v
}

/// One frame: type, flags, stream id, payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    v.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// HPACK block for `GET https://authority/path` using only literals and the static table.
pub fn get_block(authority: &str, path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x87]; // :method GET, :scheme https
    b.push(0x04); // :path, literal without indexing, name index 4
    push_str(&mut b, path);
    b.push(0x01); // :authority, literal without indexing, name index 1
    push_str(&mut b, authority);
    b
}

/// A literal header `name: value` without indexing, new name.
pub fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut b = vec![0x00];
    push_str(&mut b, name);
    push_str(&mut b, value);
    b
}

fn push_str(b: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 127, "short strings only");
    b.push(s.len() as u8);
    b.extend_from_slice(s.as_bytes());
}

pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// Parses frames out of a byte buffer: (type, flags, stream, payload).
pub fn parse(mut buf: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while buf.len() >= 9 {
        let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
        if buf.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
        out.push((buf[3], buf[4], stream, buf[9..9 + len].to_vec()));
        buf = &buf[9 + len..];
    }
    out
}
