//! Listings in pages: the size a caller may ask for, the cursor where the next page starts, and
//! the one-more-than-asked read that tells whether there is one. Also the size rule of the
//! free-form metadata that keys and tenants carry.

use keyward_store::Cursor;

use crate::error::Error;

/// The largest page any listing returns, and the default.
pub const MAX_PAGE: u32 = 1000;
pub const DEFAULT_PAGE: u32 = 100;

/// One page of a listing, with where the next one starts when there may be more.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// Validates a requested page size and cursor.
pub fn page_params(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<(u32, Option<Cursor>), Error> {
    let limit = checked_size(limit.unwrap_or(DEFAULT_PAGE))?;
    let cursor = cursor
        .map(|c| {
            c.parse::<Cursor>()
                .map_err(|e| Error::invalid_field("cursor", e))
        })
        .transpose()?;
    Ok((limit, cursor))
}

/// A page size every listing takes: 1 to [`MAX_PAGE`], else `invalid_field` naming `limit`.
pub fn checked_size(limit: u32) -> Result<u32, Error> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::invalid_field("limit", "must be between 1 and 1000"))
    }
}

/// Asks the store for one more than `limit` to learn whether another page exists.
pub fn paginate<T>(mut items: Vec<T>, limit: u32, position: impl Fn(&T) -> Cursor) -> Page<T> {
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(position)
    } else {
        None
    };
    Page { items, next }
}

/// Metadata must be a JSON object of at most 4 KiB.
pub fn validate_metadata(field: &str, value: &serde_json::Value) -> Result<(), Error> {
    if !value.is_object() {
        return Err(Error::invalid_field(field, "must be a JSON object"));
    }
    if value.to_string().len() > keyward_domain::model::MAX_METADATA_BYTES {
        return Err(Error::invalid_field(
            field,
            "must be at most 4 KiB when serialized",
        ));
    }
    Ok(())
}
