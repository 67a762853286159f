//! The two STS calls clients make before anything else: `GetCallerIdentity` (the Terraform AWS
//! provider at start-up, Ansible's `amazon.aws` modules) and `GetAccessKeyInfo`. They share the
//! EC2 endpoint and are told apart by the SigV4 credential scope's service, `sts`; the protocol
//! is AWS Query, with STS's own response and error envelopes.
//!
//! Every Kiln account is an account root, so the caller's ARN is `arn:aws:iam::<id>:root` and
//! its user id the account id, as STS answers for root credentials.

use kiln_core::{Ctx, Kiln};
use kiln_ec2::xml::escape;
use kiln_ec2::{Params, ProtocolError};

use crate::error::{to_wire, ApiError};

/// STS's XML namespace.
const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Whether a request is signed for STS: its credential scope, in the `Authorization` header or
/// a presigned query, ends with `/sts/aws4_request`.
pub fn is_sts(headers: &[(String, String)], query: &str) -> bool {
    const SCOPE_END: &str = "/sts/aws4_request";
    let in_header = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("authorization") && v.contains(SCOPE_END));
    let in_query = form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k.eq_ignore_ascii_case("X-Amz-Credential") && v.ends_with(SCOPE_END));
    in_header || in_query
}

/// Answers one authenticated STS request.
pub fn dispatch(kiln: &Kiln, ctx: &Ctx, params: &Params, request_id: &str) -> Result<String, ApiError> {
    let action = params.get("Action").ok_or(ProtocolError::MissingAction)?;
    let result = match action {
        "GetCallerIdentity" => {
            format!("<Arn>arn:aws:iam::{0}:root</Arn><UserId>{0}</UserId><Account>{0}</Account>", ctx.account)
        }
        "GetAccessKeyInfo" => {
            let key_id = params.required("AccessKeyId")?;
            let key = kiln.access_key(key_id)?.ok_or_else(|| ProtocolError::InvalidValue {
                param: "AccessKeyId".into(),
                value: key_id.to_string(),
                reason: "no account has this access key".into(),
            })?;
            format!("<Account>{}</Account>", key.account_id)
        }
        other => return Err(ProtocolError::InvalidAction(other.to_string()).into()),
    };
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{NAMESPACE}\"><{action}Result>{result}\
         </{action}Result><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    ))
}

/// STS's error envelope and codes: `(HTTP status, body)`.
pub fn error(e: &ApiError, request_id: &str) -> (u16, String) {
    let wire = to_wire(e);
    let (code, message) = match e {
        ApiError::UnknownAccessKey => {
            ("InvalidClientTokenId".to_string(), "The security token included in the request is invalid.".to_string())
        }
        ApiError::Protocol(ProtocolError::InvalidAction(a)) => {
            ("InvalidAction".to_string(), format!("Could not find operation {a} for version 2011-06-15"))
        }
        _ => (wire.code, wire.message),
    };
    let status = if matches!(e, ApiError::UnknownAccessKey) { 403 } else { wire.status };
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let mut out = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>{kind}</Type><Code>");
    escape(&code, &mut out);
    out.push_str("</Code><Message>");
    escape(&message, &mut out);
    out.push_str("</Message></Error><RequestId>");
    escape(request_id, &mut out);
    out.push_str("</RequestId></ErrorResponse>");
    (status, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_scope_tells_sts_apart() {
        let auth = |scope: &str| {
            vec![(
                "Authorization".to_string(),
                format!("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/{scope}/aws4_request, SignedHeaders=host, Signature=00"),
            )]
        };
        assert!(is_sts(&auth("sts"), ""));
        assert!(!is_sts(&auth("ec2"), ""));
        assert!(is_sts(&[], "X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fsts%2Faws4_request"));
        assert!(!is_sts(&[], "Action=GetCallerIdentity"));
    }

    #[test]
    fn errors_use_the_sts_envelope() {
        let (status, body) = error(&ApiError::UnknownAccessKey, "req-1");
        assert_eq!(status, 403);
        assert!(body.contains("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"), "{body}");
        assert!(body.contains("<Type>Sender</Type><Code>InvalidClientTokenId</Code>"), "{body}");
        assert!(body.contains("<RequestId>req-1</RequestId>"), "{body}");
    }
}
