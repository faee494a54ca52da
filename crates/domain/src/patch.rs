//! [`Patch`]: a change to a field that may be null, with its three cases named.

/// A change to a nullable field, as a JSON merge patch (RFC 7396) says it: absent leaves the
/// field as it is, `null` clears it, a value sets it.
///
/// Deserializes from `null` ([`Patch::Clear`]) or a value ([`Patch::Set`]); a struct field of
/// this type takes `#[serde(default)]` so that an absent field is [`Patch::Keep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// Leave the field as it is.
    #[default]
    Keep,
    /// Clear the field (to null).
    Clear,
    /// Set the field to this value.
    Set(T),
}

impl<T> Patch<T> {
    /// `None` as [`Patch::Clear`], a value as [`Patch::Set`] (a field that was present).
    pub fn from_nullable(value: Option<T>) -> Self {
        match value {
            None => Self::Clear,
            Some(v) => Self::Set(v),
        }
    }

    /// The field's value after the change.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Clear => None,
            Self::Set(v) => Some(v),
        }
    }

    pub fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Self::Keep => Patch::Keep,
            Self::Clear => Patch::Clear,
            Self::Set(v) => Patch::Set(f(v)),
        }
    }

    pub fn as_ref(&self) -> Patch<&T> {
        match self {
            Self::Keep => Patch::Keep,
            Self::Clear => Patch::Clear,
            Self::Set(v) => Patch::Set(v),
        }
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Patch<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(Self::from_nullable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Input {
        #[serde(default)]
        name: Patch<String>,
    }

    #[test]
    fn absent_null_and_a_value_are_three_changes() {
        let read = |json: &str| serde_json::from_str::<Input>(json).unwrap().name;
        assert_eq!(read("{}"), Patch::Keep);
        assert_eq!(read(r#"{"name": null}"#), Patch::Clear);
        assert_eq!(read(r#"{"name": "a"}"#), Patch::Set("a".to_owned()));
        assert_eq!(Patch::Keep.apply(Some(1)), Some(1));
        assert_eq!(Patch::Clear.apply(Some(1)), None);
        assert_eq!(Patch::Set(2).apply(Some(1)), Some(2));
    }
}
