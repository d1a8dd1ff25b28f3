//! The protobuf codec of `solti.task.v1`: prost's, except that bytes which do not decode
//! as the expected message are the sender's mistake, `INVALID_ARGUMENT`, where
//! `tonic_prost::ProstCodec` answers `INTERNAL` (nothing failed inside the server).
//!
//! The generated service and client use it (`xtask` sets it as the codec path). On the
//! client side the same code describes a response the server sent malformed.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::ProstCodec;

/// [`ProstCodec`] with decode failures as `INVALID_ARGUMENT` (`invalid request message: …`).
#[derive(Debug)]
pub(crate) struct ProtoCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = ProtoDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

/// The decoder of [`ProtoCodec`].
#[derive(Debug)]
pub(crate) struct ProtoDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for ProtoDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D::Item>, Status> {
        // prost's decoder fails only on bytes that are not the message.
        self.0.decode(src).map_err(|status| {
            Status::invalid_argument(format!("invalid request message: {}", status.message()))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
