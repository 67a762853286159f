//! SigV4 authentication of an EC2 request: who is calling, and in which region.

use chrono::{DateTime, Utc};
use kiln_core::{Ctx, Kiln};
use kiln_ec2::sigv4::{self, HttpRequest, SigV4Error};

use crate::error::ApiError;

/// Verifies the request's signature and returns the caller's context.
pub fn authenticate(kiln: &Kiln, req: &HttpRequest<'_>, now: DateTime<Utc>, service: &str) -> Result<Ctx, ApiError> {
    let claims = sigv4::parse(req)?;
    if claims.service != service {
        return Err(ApiError::WrongService(claims.service));
    }
    // Unsigned bodies would let anyone replay a signature with a different action.
    let unsigned = req
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("x-amz-content-sha256") && v.trim() == sigv4::UNSIGNED_PAYLOAD);
    if unsigned && !req.body.is_empty() && service == "ec2" {
        return Err(ApiError::SigV4(SigV4Error::Malformed(
            "UNSIGNED-PAYLOAD is not accepted for EC2 request bodies".into(),
        )));
    }
    let key = kiln.access_key(&claims.access_key_id)?.ok_or(ApiError::UnknownAccessKey)?;
    sigv4::verify(req, &claims, &key.secret, now)?;
    // STS is global: any region may sign for it.
    if service != "sts" && kiln.region(&claims.region).is_none() {
        return Err(ApiError::UnknownRegion(claims.region));
    }
    let ctx = Ctx { account: key.account_id, region: claims.region };
    if service != "sts" {
        kiln.ensure_region(&ctx)?;
    }
    Ok(ctx)
}
