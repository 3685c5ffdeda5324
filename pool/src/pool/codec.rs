//! The pool's encoding of task arguments and results: a serde format of
//! fixed-width little-endian fields, built for speed on the hot path of
//! [`Pool::map`](super::Pool::map) (a `u64` is one 8-byte store and one
//! 8-byte load, where a varint takes a loop).
//!
//! | serde shape | bytes |
//! |---|---|
//! | `bool` | 1 byte, 0 or 1 |
//! | integers, `f32`, `f64` | their width, little-endian (`u8` 1 byte ... `u128` 16 bytes) |
//! | `char` | its scalar value as a `u32` |
//! | `str`, bytes | the length as a `u64`, then the bytes (a `str` in UTF-8) |
//! | `Option` | 1 byte, 0 for `None`, 1 for `Some` followed by the value |
//! | unit, unit struct | nothing |
//! | newtype struct | the value |
//! | sequence, map | the number of elements (entries) as a `u64`, then each (key, then value) |
//! | tuple, tuple struct, struct | the fields, in order |
//! | enum | the variant's index as a `u32`, then its fields as above |
//!
//! The format is not self-describing: a type that needs
//! `deserialize_any` (untagged enums, `serde_json::Value`, flattened
//! structs, ...) does not decode, with a [`CodecError`] saying so. A
//! sequence or map of unknown length is encoded too (its count is
//! written once it is known). Bytes that do not decode give an error,
//! never a panic.

use core::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

/// A value that does not encode, or bytes that do not decode, in the
/// pool's format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CodecError(Kind);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// The bytes end before the value does.
    End { needed: usize, left: usize },
    /// A `bool` byte other than 0 or 1.
    Bool(u8),
    /// An `Option` tag other than 0 or 1.
    OptionTag(u8),
    /// A `char` that is no Unicode scalar value.
    Char(u32),
    /// A `str` that is not UTF-8.
    Utf8,
    /// A tag byte of the pool's frames that means nothing.
    Tag(u8),
    /// A run of results that is empty or longer than the items left.
    Count { run: u32, left: usize },
    /// A length that does not fit in this machine's `usize`.
    Length(u64),
    /// The type asked for `deserialize_any` or `deserialize_ignored_any`.
    NotSelfDescribing,
    /// The type's own `Serialize` or `Deserialize` said so.
    Custom(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::End { needed, left } => {
                write!(f, "the bytes end early: {needed} more needed, {left} left")
            }
            Kind::Bool(byte) => write!(f, "{byte} is not a bool (0 or 1)"),
            Kind::OptionTag(byte) => write!(f, "{byte} is not an Option tag (0 or 1)"),
            Kind::Char(value) => write!(f, "{value:#x} is not a char"),
            Kind::Utf8 => f.write_str("a string is not UTF-8"),
            Kind::Tag(byte) => write!(f, "{byte} is not the tag of a result"),
            Kind::Count { run, left } => {
                write!(f, "a run of {run} results where {left} items are left")
            }
            Kind::Length(len) => write!(f, "a length of {len} does not fit in memory"),
            Kind::NotSelfDescribing => f.write_str(
                "the type needs a self-describing format (deserialize_any), which the pool's \
                 encoding is not",
            ),
            Kind::Custom(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CodecError {}

impl CodecError {
    /// A result's tag byte that means nothing.
    pub(crate) fn tag(byte: u8) -> Self {
        Self(Kind::Tag(byte))
    }

    /// A run of `run` results where `left` items are left.
    pub(crate) fn count(run: u32, left: usize) -> Self {
        Self(Kind::Count { run, left })
    }
}

impl ser::Error for CodecError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(Kind::Custom(message.to_string()))
    }
}

impl de::Error for CodecError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(Kind::Custom(message.to_string()))
    }
}

type Result<T, E = CodecError> = core::result::Result<T, E>;

/// Appends `value`, encoded, to `out`; on an error `out` is left as it
/// was.
pub(crate) fn encode_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    let mark = out.len();
    let result = value.serialize(&mut Encoder { out });
    if result.is_err() {
        out.truncate(mark);
    }
    result
}

/// Decodes one value of `T` from the start of `bytes` (whatever follows
/// is left alone).
#[cfg(test)]
pub(crate) fn decode<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Decoder::new(bytes).next()
}

/// Writes values into a `Vec`.
struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    #[inline]
    fn len(&mut self, len: usize) {
        self.put(&(len as u64).to_le_bytes());
    }
}

impl<'a, 'b> ser::Serializer for &'b mut Encoder<'a> {
    type Ok = ();
    type Error = CodecError;
    type SerializeSeq = Counted<'a, 'b>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Counted<'a, 'b>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<()> {
        self.out.push(u8::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, v: i128) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.out.push(v);
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_u128(self, v: u128) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.put(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<()> {
        self.put(&u32::from(v).to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<()> {
        self.serialize_bytes(v.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.len(v.len());
        self.put(v);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<()> {
        self.out.push(0);
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        self.out.push(1);
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(self, _: &'static str, index: u32, _: &'static str) -> Result<()> {
        self.serialize_u32(index)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        self.put(&index.to_le_bytes());
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Counted<'a, 'b>> {
        Ok(Counted::new(self, len))
    }

    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Self> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self> {
        self.put(&index.to_le_bytes());
        Ok(self)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Counted<'a, 'b>> {
        Ok(Counted::new(self, len))
    }

    #[inline]
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self> {
        self.put(&index.to_le_bytes());
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A sequence or map being written: its count is written first when
/// known, and patched in at the end otherwise.
struct Counted<'a, 'b> {
    encoder: &'b mut Encoder<'a>,
    /// Where the count goes, when it was not known at the start.
    patch: Option<usize>,
    count: u64,
}

impl<'a, 'b> Counted<'a, 'b> {
    fn new(encoder: &'b mut Encoder<'a>, len: Option<usize>) -> Self {
        let patch = match len {
            Some(len) => {
                encoder.len(len);
                None
            }
            None => {
                let at = encoder.out.len();
                encoder.len(0);
                Some(at)
            }
        };
        Self {
            encoder,
            patch,
            count: 0,
        }
    }

    fn end(self) -> Result<()> {
        if let Some(at) = self.patch {
            self.encoder.out[at..at + 8].copy_from_slice(&self.count.to_le_bytes());
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Counted<'_, '_> {
    type Ok = ();
    type Error = CodecError;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.count += 1;
        value.serialize(&mut *self.encoder)
    }

    fn end(self) -> Result<()> {
        Counted::end(self)
    }
}

impl ser::SerializeMap for Counted<'_, '_> {
    type Ok = ();
    type Error = CodecError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.count += 1;
        key.serialize(&mut *self.encoder)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.encoder)
    }

    fn end(self) -> Result<()> {
        Counted::end(self)
    }
}

macro_rules! fields {
    ($($trait:ident :: $method:ident),+) => {
        $(
            impl ser::$trait for &mut Encoder<'_> {
                type Ok = ();
                type Error = CodecError;

                #[inline]
                fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                    value.serialize(&mut **self)
                }

                #[inline]
                fn end(self) -> Result<()> {
                    Ok(())
                }
            }
        )+
    };
}

fields!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! named_fields {
    ($($trait:ident),+) => {
        $(
            impl ser::$trait for &mut Encoder<'_> {
                type Ok = ();
                type Error = CodecError;

                #[inline]
                fn serialize_field<T: Serialize + ?Sized>(
                    &mut self,
                    _: &'static str,
                    value: &T,
                ) -> Result<()> {
                    value.serialize(&mut **self)
                }

                #[inline]
                fn end(self) -> Result<()> {
                    Ok(())
                }
            }
        )+
    };
}

named_fields!(SerializeStruct, SerializeStructVariant);

/// Reads values from a byte slice, one after the other.
pub(crate) struct Decoder<'de> {
    input: &'de [u8],
}

impl<'de> Decoder<'de> {
    /// A decoder at the start of `input`.
    pub(crate) fn new(input: &'de [u8]) -> Self {
        Self { input }
    }

    /// Decodes the next value.
    #[inline]
    pub(crate) fn next<T: de::DeserializeOwned>(&mut self) -> Result<T> {
        T::deserialize(self)
    }

    /// Takes the next byte.
    #[inline]
    pub(crate) fn byte(&mut self) -> Result<u8> {
        let [byte] = self.array::<1>()?;
        Ok(byte)
    }

    /// Takes the next `N` bytes.
    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        match self.input.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.input = rest;
                Ok(*head)
            }
            None => Err(self.end(N)),
        }
    }

    #[cold]
    fn end(&self, needed: usize) -> CodecError {
        CodecError(Kind::End {
            needed,
            left: self.input.len(),
        })
    }

    /// Takes a length.
    #[inline]
    fn len(&mut self) -> Result<usize> {
        let len = u64::from_le_bytes(self.array()?);
        usize::try_from(len).map_err(|_| CodecError(Kind::Length(len)))
    }

    /// Takes a length, then that many bytes.
    #[inline]
    fn bytes(&mut self) -> Result<&'de [u8]> {
        let len = self.len()?;
        if len > self.input.len() {
            return Err(self.end(len));
        }
        let (head, rest) = self.input.split_at(len);
        self.input = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<&'de str> {
        core::str::from_utf8(self.bytes()?).map_err(|_| CodecError(Kind::Utf8))
    }
}

macro_rules! number {
    ($($method:ident => $visit:ident: $type:ty),+ $(,)?) => {
        $(
            #[inline]
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
                visitor.$visit(<$type>::from_le_bytes(self.array()?))
            }
        )+
    };
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = CodecError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(CodecError(Kind::NotSelfDescribing))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(CodecError(Kind::NotSelfDescribing))
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            other => Err(CodecError(Kind::Bool(other))),
        }
    }

    number!(
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    );

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let value = u32::from_le_bytes(self.array()?);
        match char::from_u32(value) {
            Some(c) => visitor.visit_char(c),
            None => Err(CodecError(Kind::Char(value))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            other => Err(CodecError(Kind::OptionTag(other))),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let left = self.len()?;
        visitor.visit_seq(Elements {
            decoder: self,
            left,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(Elements {
            decoder: self,
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let left = self.len()?;
        visitor.visit_map(Elements {
            decoder: self,
            left,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u32(visitor)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple or struct, or the entries of a map.
struct Elements<'a, 'de> {
    decoder: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = CodecError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.decoder).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        // A hint only (serde's collections cap what they reserve), but no
        // more than the bytes left could hold, so that a bad length does
        // not ask for much.
        Some(self.left.min(self.decoder.input.len()))
    }
}

impl<'de> de::MapAccess<'de> for Elements<'_, 'de> {
    type Error = CodecError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.decoder).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.decoder)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(self.decoder.input.len()))
    }
}

impl<'de> de::EnumAccess<'de> for &mut Decoder<'de> {
    type Error = CodecError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let index = u32::from_le_bytes(self.array()?);
        let value = seed.deserialize(index.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Decoder<'de> {
    type Error = CodecError;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::fmt::Debug;

    use serde::de::DeserializeOwned;
    use serde::ser::{SerializeMap, SerializeSeq, Serializer};
    use serde::{Deserialize, Serialize};

    use super::{CodecError, Decoder, Kind, decode, encode_into};

    fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(&mut out, value).expect("encodes");
        out
    }

    /// Encodes `value`, decodes it back, checks that every byte was used
    /// and that every shorter prefix fails with an error (no panic).
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) -> Vec<u8> {
        let bytes = encode(&value);
        let mut decoder = Decoder::new(&bytes);
        assert_eq!(decoder.next::<T>().expect("decodes"), value);
        assert!(decoder.input.is_empty(), "bytes left after {value:?}");
        for cut in 0..bytes.len() {
            let error = decode::<T>(&bytes[..cut]).expect_err("a prefix is not a value");
            assert!(
                matches!(error.0, Kind::End { .. }),
                "{value:?} cut at {cut}: {error}"
            );
        }
        bytes
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Unit;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Newtype(i16);

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Pair(u8, String);

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Record {
        id: u32,
        name: String,
        tags: Vec<String>,
        score: Option<f64>,
        nested: Option<Box<Record>>,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    enum Shape {
        Empty,
        Circle(f32),
        Rect(u16, u16),
        Named { name: String, sides: u8 },
    }

    /// Bytes, through `serialize_bytes` (as `serde_bytes` does).
    #[derive(PartialEq, Debug)]
    struct Bytes(Vec<u8>);

    impl Serialize for Bytes {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visit;
            impl serde::de::Visitor<'_> for Visit {
                type Value = Bytes;
                fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
            }
            deserializer.deserialize_bytes(Visit)
        }
    }

    #[test]
    fn every_primitive_round_trips() {
        round_trip(true);
        round_trip(false);
        for v in [i8::MIN, -1, 0, i8::MAX] {
            round_trip(v);
        }
        for v in [u8::MIN, 1, u8::MAX] {
            round_trip(v);
        }
        round_trip(i16::MIN);
        round_trip(u16::MAX);
        round_trip(i32::MIN);
        round_trip(u32::MAX);
        round_trip(i64::MIN);
        round_trip(u64::MAX);
        round_trip(i128::MIN);
        round_trip(u128::MAX);
        round_trip(usize::MAX);
        round_trip(isize::MIN);
        round_trip(-0.5f32);
        round_trip(f64::MAX);
        round_trip(f64::INFINITY);
        let nan = decode::<f64>(&encode(&f64::NAN)).unwrap();
        assert_eq!(nan.to_bits(), f64::NAN.to_bits());
        round_trip('a');
        round_trip('\u{10FFFF}');
        round_trip(String::new());
        round_trip("größer 🦀".to_owned());
        round_trip(Bytes(Vec::new()));
        round_trip(Bytes((0..=255).collect()));
        round_trip(());
    }

    #[test]
    fn every_compound_shape_round_trips() {
        round_trip(Unit);
        round_trip(Newtype(-7));
        round_trip(Pair(3, "three".to_owned()));
        round_trip((1u8, -2i64, 'z', (), Some(false)));
        round_trip(None::<u32>);
        round_trip(Some(Some(0u8)));
        round_trip(vec![Shape::Empty, Shape::Circle(1.5), Shape::Rect(2, 3)]);
        round_trip(Shape::Named {
            name: "hexagon".to_owned(),
            sides: 6,
        });
        round_trip(Record {
            id: 1,
            name: "outer".to_owned(),
            tags: vec!["a".to_owned(), String::new()],
            score: Some(0.25),
            nested: Some(Box::new(Record {
                id: 2,
                name: "inner".to_owned(),
                tags: Vec::new(),
                score: None,
                nested: None,
            })),
        });
        round_trip(Vec::<u64>::new());
        round_trip(vec![vec![1u16, 2], vec![], vec![3]]);
        round_trip([7u32; 5]);
        round_trip(BTreeMap::from([
            (1u8, "one".to_owned()),
            (2, "two".to_owned()),
        ]));
        round_trip(HashMap::from([("k".to_owned(), vec![Some(1i8), None])]));
        // Odd sizes: every length of a sequence of odd-sized values.
        for len in 0..20 {
            let items: Vec<(u8, u16, bool)> = (0..len)
                .map(|i| (i, u16::from(i) * 3, i % 2 == 0))
                .collect();
            assert_eq!(round_trip(items).len(), 8 + 4 * len as usize);
        }
    }

    #[test]
    fn the_layout_is_fixed_width_little_endian() {
        assert_eq!(encode(&0x0102_0304_0506_0708u64), [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(encode(&-2i16), [0xfe, 0xff]);
        assert_eq!(encode(&true), [1]);
        assert_eq!(encode(&'A'), [0x41, 0, 0, 0]);
        assert_eq!(encode("hi"), [2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i']);
        assert_eq!(encode(&Some(5u8)), [1, 5]);
        assert_eq!(encode(&None::<u8>), [0]);
        assert_eq!(encode(&Shape::Rect(1, 2)), [2, 0, 0, 0, 1, 0, 2, 0]);
        assert_eq!(encode(&Shape::Empty), [0, 0, 0, 0]);
        assert_eq!(encode(&vec![1u8, 2]), [2, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(encode(&(Unit, Newtype(1))), [1, 0]);
    }

    /// A sequence and a map that do not say their length up front.
    struct Unsized;

    impl Serialize for Unsized {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(None)?;
            for n in 0..3u32 {
                seq.serialize_element(&n)?;
            }
            seq.end()
        }
    }

    struct UnsizedMap;

    impl Serialize for UnsizedMap {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(None)?;
            map.serialize_entry("a", &1u8)?;
            map.serialize_entry("b", &2u8)?;
            map.end()
        }
    }

    #[test]
    fn unknown_lengths_are_counted() {
        let mut out = vec![0xaa];
        encode_into(&mut out, &Unsized).unwrap();
        assert_eq!(
            decode::<Vec<u32>>(&out[1..]).unwrap(),
            [0, 1, 2],
            "the count is patched in place, after what came before"
        );
        let map = decode::<BTreeMap<String, u8>>(&encode(&UnsizedMap)).unwrap();
        assert_eq!(
            map,
            BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)])
        );
    }

    /// Fails to serialize after writing part of itself.
    struct Refuses;

    impl Serialize for Refuses {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(2))?;
            seq.serialize_element(&1u64)?;
            Err(serde::ser::Error::custom("refused on purpose"))
        }
    }

    #[test]
    fn a_failed_encoding_leaves_the_buffer_as_it_was() {
        let mut out = vec![1, 2, 3];
        let error = encode_into(&mut out, &Refuses).unwrap_err();
        assert_eq!(error.to_string(), "refused on purpose");
        assert_eq!(out, [1, 2, 3]);
    }

    #[derive(Deserialize, Debug)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Untagged {
        Number(u32),
        Text(String),
    }

    fn error<T: DeserializeOwned + Debug>(bytes: &[u8]) -> CodecError {
        decode::<T>(bytes).expect_err("bad bytes")
    }

    #[test]
    fn bad_bytes_are_clear_errors() {
        assert_eq!(error::<bool>(&[2]).to_string(), "2 is not a bool (0 or 1)");
        assert_eq!(
            error::<Option<u8>>(&[7, 0]).to_string(),
            "7 is not an Option tag (0 or 1)"
        );
        assert_eq!(
            error::<char>(&0xd800u32.to_le_bytes()).to_string(),
            "0xd800 is not a char"
        );
        let mut bad_utf8 = encode(&2u64);
        bad_utf8.extend([0xff, 0xfe]);
        assert_eq!(
            error::<String>(&bad_utf8).to_string(),
            "a string is not UTF-8"
        );
        assert_eq!(
            error::<u64>(&[1, 2, 3]).to_string(),
            "the bytes end early: 8 more needed, 3 left"
        );
        // A length far beyond the bytes: an error, no huge allocation.
        let huge = encode(&u64::MAX);
        assert!(matches!(
            error::<String>(&huge).0,
            Kind::End { .. } | Kind::Length(_)
        ));
        assert!(matches!(error::<Vec<u64>>(&huge).0, Kind::End { .. }));
        assert!(matches!(
            error::<Vec<u8>>(&encode(&(1u64 << 40))).0,
            Kind::End { .. }
        ));
        let unknown_variant = error::<Shape>(&9u32.to_le_bytes()).to_string();
        assert!(unknown_variant.contains('9'), "{unknown_variant}");
        assert!(
            error::<Untagged>(&encode(&5u32))
                .to_string()
                .contains("self-describing")
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator: many byte strings of every
        // length up to 64, decoded as a type of every shape.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..20_000 {
            let len = round % 65;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Mostly small bytes, so that tags and lengths are
                    // often valid and decoding goes deep.
                    if state.is_multiple_of(3) {
                        state as u8
                    } else {
                        (state % 4) as u8
                    }
                })
                .collect();
            let _ = decode::<Record>(&bytes);
            let _ = decode::<Vec<Shape>>(&bytes);
            let _ = decode::<(char, Option<String>, BTreeMap<u8, i64>)>(&bytes);
        }
    }
}
