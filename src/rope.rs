//! Bytes held as a sequence of shared parts.
//!
//! A feed is its channel header, one cached fragment per item and a footer. Keeping those parts
//! instead of copying them into one buffer means a reload of a 10,000-episode feed, or the start of
//! a 100,000-episode one, allocates and copies no feed-sized buffer; the response body sends the
//! parts in order (hyper writes them with vectored writes).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

#[derive(Debug, Clone, Default)]
pub struct Rope {
    parts: Arc<[Bytes]>,
    len: usize,
}

impl Rope {
    /// Joins `parts` without copying them. Empty parts are dropped.
    pub fn from_parts(parts: Vec<Bytes>) -> Rope {
        let parts: Arc<[Bytes]> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let len = parts.iter().map(Bytes::len).sum();
        Rope { parts, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The content as one buffer: free for a single part, a copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match &*self.parts {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = BytesMut::with_capacity(self.len);
                for p in many {
                    out.extend_from_slice(p);
                }
                out.freeze()
            }
        }
    }

    /// A response body that sends the parts in order.
    pub fn body(&self) -> RopeBody {
        RopeBody {
            rope: self.clone(),
            next: 0,
            left: self.len as u64,
        }
    }
}

impl From<Bytes> for Rope {
    fn from(b: Bytes) -> Rope {
        Rope::from_parts(vec![b])
    }
}

impl From<Vec<u8>> for Rope {
    fn from(v: Vec<u8>) -> Rope {
        Rope::from(Bytes::from(v))
    }
}

/// Equal content, whatever the split into parts.
impl PartialEq for Rope {
    fn eq(&self, other: &Rope) -> bool {
        self.len == other.len && self.to_bytes() == other.to_bytes()
    }
}

/// The body of a [`Rope`] response, with an exact size hint so hyper sends `Content-Length`.
#[derive(Debug)]
pub struct RopeBody {
    rope: Rope,
    next: usize,
    left: u64,
}

impl Body for RopeBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let Some(part) = self.rope.parts.get(self.next).cloned() else {
            return Poll::Ready(None);
        };
        self.next += 1;
        self.left -= part.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_join_in_order_and_empty_parts_vanish() {
        let r = Rope::from_parts(vec![
            Bytes::from_static(b"<rss>"),
            Bytes::new(),
            Bytes::from_static(b"<item/>"),
            Bytes::from_static(b"</rss>"),
        ]);
        assert_eq!(r.len(), 18);
        assert_eq!(r.parts().len(), 3);
        assert_eq!(&r.to_bytes()[..], b"<rss><item/></rss>");
        assert_eq!(r, Rope::from(b"<rss><item/></rss>".to_vec()));
    }

    #[test]
    fn body_yields_every_part_with_an_exact_size() {
        use std::future::poll_fn;
        let r = Rope::from_parts(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cde")]);
        let mut body = r.body();
        assert_eq!(body.size_hint().exact(), Some(5));
        let mut got = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                got.extend_from_slice(&frame.unwrap().into_data().unwrap());
            }
        });
        assert_eq!(got, b"abcde");
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
