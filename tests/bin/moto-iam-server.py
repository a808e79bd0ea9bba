"""moto's server with its IAM evaluation made at least as strict as AWS's.

Started by tests/bin/stack.sh instead of `python3 -m moto.server`, with
INITIAL_NO_AUTH_ACTION_COUNT set: after that many calls every request is authorised
against the caller's identity policies (an IAM user's, or an assumed role's).

What moto (5.x, moto/iam/access_control.py and moto/core/authorization.py) evaluates, and
what this file changes, each to AWS's documented rule:

1. Resources. moto passes the real resource ARN only for S3 (bucket, bucket/key), SQS
   (queue), IAM (role) and STS (AssumeRole); every other service is authorised against
   "*", so a statement scoped to a secret's ARN never matches (moto denies what AWS
   allows, and can never tell two secrets apart). Here Secrets Manager, RDS, EKS,
   Lambda and CloudWatch DescribeAlarms requests carry the ARN of the resource they act
   on, as the Service Authorization Reference lists it (secret; db / pg; cluster;
   function; each named alarm); operations with no resource type (GetRandomPassword)
   keep "*".
2. Conditions. moto evaluates only StringEquals, ignores every other operator (a
   StringLike on s3:prefix always passes), and turns a failed condition of an Allow into
   an explicit deny. Here identity-policy conditions are evaluated as AWS does: String/Arn
   operators with wildcards, `...IfExists`, a key absent from the request context makes a
   positive operator false, and a statement whose condition fails simply does not apply.
   The context has the keys S3 documents for the call (s3:prefix, s3:delimiter,
   s3:max-keys on ListBucket) and aws:SecureTransport.
3. Wildcards. moto turns `*` into `.*` and leaves every other character a regular
   expression (`?` became "optional", `.` "any"). Here `*` is any run of characters, `?`
   exactly one, the rest literal; actions match case-insensitively, as IAM's do.
4. S3 action names. moto authorises several S3 calls under names IAM does not have
   (HeadBucket, GetPublicAccessBlock, PutPublicAccessBlock, DeletePublicAccessBlock) or
   under a wrong one (PutBucketEncryption as CreateBucket, GetBucketEncryption as
   ListBucket). Here each call is authorised under the action the S3 API reference names
   in its "Permissions" section.
5. A missing key. AWS answers GetObject/HeadObject of a missing key with 404 only when the
   caller also has s3:ListBucket on the bucket, 403 AccessDenied otherwise (S3 API
   reference, GetObject, "Permissions"); moto always answers 404. Here the ListBucket check
   is made, in the GetObject request's own context (so no s3:prefix).
6. RotateSecret also needs lambda:InvokeFunction on the rotation function (Secrets
   Manager API reference, RotateSecret, "Required permissions"); moto does not check it.

Still not modelled (each more permissive than AWS; the deployment's tests check them
statically instead, see tests/integration/infra.rs): resource-based policies (bucket
policies, secret policies, KMS key policies, Lambda permissions), permissions
boundaries, SCPs, session policies, and the actions one call performs on behalf of the
caller (KMS Decrypt for a CMK-encrypted secret).
"""

from __future__ import annotations

import re
import sys
import threading
from urllib.parse import unquote, urlparse

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam import access_control
from moto.iam.access_control import IAMPolicyStatement, IAMRequest, PermissionResult, S3IAMRequest
from moto.utilities.utils import get_partition

# The request context of the call being authorised (condition keys), per thread.
_context = threading.local()


def _condition_context() -> dict[str, list[str]]:
    return getattr(_context, "values", None) or {}


def _glob(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM wildcards: `*` any run, `?` exactly one character, everything else literal."""
    expression = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(expression, value, flags | re.DOTALL) is not None


def _check_element_matches(self: IAMPolicyStatement, element: str, value: str) -> bool:
    patterns = self._statement[element]
    if isinstance(patterns, str):
        patterns = [patterns]
    action = element in ("Action", "NotAction")
    return any(_glob(p, value, case_sensitive=not action) for p in patterns)


def _operator_matches(operator: str, expected: list[str], actual: list[str] | None) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    negated = "Not" in base
    if actual is None:
        # AWS: an absent key makes a positive operator false and a negated one true;
        # ...IfExists is true when the key is absent.
        return True if if_exists else negated
    matchers = {
        "StringEquals": lambda e, a: e == a,
        "StringNotEquals": lambda e, a: e == a,
        "StringEqualsIgnoreCase": lambda e, a: e.lower() == a.lower(),
        "StringNotEqualsIgnoreCase": lambda e, a: e.lower() == a.lower(),
        "StringLike": lambda e, a: _glob(e, a),
        "StringNotLike": lambda e, a: _glob(e, a),
        "ArnEquals": lambda e, a: e == a,
        "ArnNotEquals": lambda e, a: e == a,
        "ArnLike": lambda e, a: _glob(e, a),
        "ArnNotLike": lambda e, a: _glob(e, a),
        "Bool": lambda e, a: e.lower() == a.lower(),
    }
    match = matchers.get(base)
    if match is None:
        # An operator this file does not evaluate never grants anything.
        return False
    hit = any(match(e, a) for e in expected for a in actual)
    return not hit if negated else hit


def _identity_conditions_hold(statement: dict) -> bool:
    context = {k.lower(): v for k, v in _condition_context().items()}
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            expected = [expected] if isinstance(expected, str) else [str(e) for e in expected]
            if not _operator_matches(operator, expected, context.get(key.lower())):
                return False
    return True


_original_statement_permitted = IAMPolicyStatement.is_action_permitted


def _statement_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
    if principal is not None:
        # A trust policy (sts:AssumeRole): moto's own evaluation, principal included.
        return _original_statement_permitted(
            self, action, resource, principal, incoming_condition_values
        )
    if "NotAction" in self._statement:
        concerned = not self._check_element_matches("NotAction", action)
    else:
        concerned = self._check_element_matches("Action", action)
    if not concerned:
        return PermissionResult.NEUTRAL
    if "NotResource" in self._statement:
        if self._check_element_matches("NotResource", resource):
            return PermissionResult.NEUTRAL
    elif not self._check_element_matches("Resource", resource):
        return PermissionResult.NEUTRAL
    if not _identity_conditions_hold(self._statement):
        return PermissionResult.NEUTRAL
    return PermissionResult.PERMITTED if self._statement["Effect"] == "Allow" else PermissionResult.DENIED


IAMPolicyStatement._check_element_matches = _check_element_matches
IAMPolicyStatement.is_action_permitted = _statement_permitted


# ---- the request moto authorises, and what it answers when it refuses -----------------


def _authenticate_and_authorize_action(self, iam_request_cls, resource="*"):
    """moto's, but signing the query string as the client sent it: werkzeug's URL has it
    decoded (`prefix=state/x`), so every signed request with a `/` in a query value
    failed with SignatureDoesNotMatch."""
    if not _auth_is_on():
        ActionAuthenticatorMixin.request_count += 1
        return
    if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    request = _iam_request(self, iam_request_cls)
    request.check_signature()
    request.check_action_permitted(resource)


def _iam_request(response, cls):
    """The IAM request moto builds for `response`'s call."""
    parsed = urlparse(response.uri)
    query = getattr(response, "_raw_query", None)
    if query is None:
        query = parsed.query
    path = parsed.path + ("?" + query if query else "")
    return cls(
        account_id=response.current_account,
        method=response.method,
        path=path,
        data=response.data,
        body=response.raw_body,
        headers=response.headers,
        action=response._get_action(),
    )


def _create_aws_request(self):
    """moto's, signing the request's own body: moto falls back to its parsed parameters,
    which for a GET without a query string are the request's headers, so every such
    call (EKS DescribeCluster, ListClusters) failed with SignatureDoesNotMatch."""
    from botocore.awsrequest import AWSRequest

    signed = self._get_string_between("SignedHeaders=", ",", self._headers["Authorization"]).split(";")
    headers = self._create_headers_for_aws_request(signed, self._headers)
    # A form POST's body reaches moto parsed (raw body empty): moto's parameters are it.
    body = self._body or (b"" if self._method in ("GET", "HEAD", "DELETE") else self._data)
    request = AWSRequest(method=self._method, url=self._path, data=body, headers=headers)
    request.context["timestamp"] = headers["X-Amz-Date"]
    return request


def _remember_raw_query() -> None:
    from moto.core.responses import BaseResponse

    original = BaseResponse.setup_class

    def setup_class(self, request, full_url, headers, *args, **kwargs):
        environ = getattr(request, "environ", None)
        self._raw_query = environ.get("QUERY_STRING") if environ else None
        return original(self, request, full_url, headers, *args, **kwargs)

    BaseResponse.setup_class = setup_class


_original_check = access_control.IAMRequestBase.check_action_permitted


def _check_action_permitted(self, resource):
    self._resource = resource
    service, _, action = self._action.partition(":")
    if service in IAM_PREFIXES:
        self._action = f"{IAM_PREFIXES[service]}:{action}"
    _original_check(self, resource)


def _denied_message(request) -> str:
    # AWS's wording: the caller, the action, the resource.
    return (
        f"User: {request._access_key.arn} is not authorized to perform: {request._action}"
        f" on resource: {getattr(request, '_resource', '*')}"
        " because no identity-based policy allows the action"
    )


# Services whose protocol is JSON: their clients parse `__type`, not an XML error.
JSON_SERVICES = {"secretsmanager", "lambda", "eks", "kms", "logs", "events", "sqs", "monitoring"}

# Services whose IAM prefix is not their signing name (CloudWatch signs as `monitoring`).
IAM_PREFIXES = {"monitoring": "cloudwatch"}


def _raise_access_denied(self):
    from moto.core.exceptions import JsonRESTError
    from moto.core.exceptions import _RESTError as RESTError

    if self._service in JSON_SERVICES:
        raise JsonRESTError("AccessDeniedException", _denied_message(self))

    class NamedAccessDenied(RESTError):
        code = 403

    raise NamedAccessDenied("AccessDenied", _denied_message(self))


def _raise_s3_access_denied(self):
    from moto.s3.exceptions import S3AccessDeniedError, S3ClientError

    class NamedAccessDenied(S3AccessDeniedError):
        def __init__(self, message: str):
            S3ClientError.__init__(self, "AccessDenied", message)

    raise NamedAccessDenied(_denied_message(self))


def _install_requests() -> None:
    ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize_action
    _remember_raw_query()
    access_control.IAMRequestBase._create_aws_request = _create_aws_request
    access_control.IAMRequestBase.check_action_permitted = _check_action_permitted
    IAMRequest._raise_access_denied = _raise_access_denied
    S3IAMRequest._raise_access_denied = _raise_s3_access_denied


def _auth_is_on() -> bool:
    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


def _require(response, cls, action: str, resource: str, context=None) -> None:
    """Raises moto's AccessDenied unless the caller may perform `action` on `resource`."""
    request = _iam_request(response, cls)
    request._action = action
    previous = _condition_context()
    _context.values = dict(context or {}, **{"aws:SecureTransport": ["false"]})
    try:
        request.check_action_permitted(resource)
    finally:
        _context.values = previous


# ---- 1. resources of the services moto authorises against "*" ------------------------


def _arn(response, service: str, rest: str) -> str:
    return f"arn:{get_partition(response.region)}:{service}:{response.region}:{response.current_account}:{rest}"


def _secret_resource(self) -> str:
    from moto.secretsmanager.models import secretsmanager_backends

    secret_id = self._get_param("SecretId") or self._get_param("Name")
    if not secret_id:
        return "*"  # GetRandomPassword, ListSecrets: no resource type
    secrets = secretsmanager_backends[self.current_account][self.region].secrets
    if secret_id in secrets:
        return secrets[secret_id].arn
    if secret_id.startswith("arn:"):
        return secret_id
    # A secret that does not exist (yet): its name without the random suffix, which no
    # `name-??????` pattern matches; AWS answers such a caller AccessDenied too.
    return _arn(self, "secretsmanager", f"secret:{secret_id}")


def _rds_resource(self) -> str:
    instance = self._get_param("DBInstanceIdentifier")
    group = self._get_param("DBParameterGroupName")
    if group:
        return _arn(self, "rds", f"pg:{group}")
    return _arn(self, "rds", f"db:{instance or '*'}")


def _eks_resource(self) -> str:
    match = re.match(r"^/clusters/([^/]+)", urlparse(self.uri).path)
    return _arn(self, "eks", f"cluster/{unquote(match.group(1))}") if match else "*"


def _lambda_resource(self) -> str:
    match = re.match(r"^/[^/]+/functions/([^/]+)", urlparse(self.uri).path)
    if not match:
        return "*"
    name = unquote(match.group(1))
    if name.startswith("arn:"):
        return name
    return _arn(self, "lambda", f"function:{name}")


def _install_cloudwatch() -> None:
    """DescribeAlarms acts on each alarm it names (resource type `alarm`); without names
    it needs every alarm (`alarm:*`)."""
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import BaseResponse

    original = BaseResponse._authenticate_and_authorize_normal_action

    def authorize(self, resource="*"):
        if self._get_action() != "DescribeAlarms":
            return original(self, resource)
        names = self._get_param("AlarmNames") or ["*"]
        for name in names:
            original(self, _arn(self, "cloudwatch", f"alarm:{name}"))

    CloudWatchResponse._authenticate_and_authorize_normal_action = authorize


def _install_resources() -> None:
    from moto.awslambda.responses import LambdaResponse
    from moto.eks.responses import EKSResponse
    from moto.rds.responses import RDSResponse
    from moto.secretsmanager.responses import SecretsManagerResponse

    SecretsManagerResponse._determine_resource = _secret_resource
    RDSResponse._determine_resource = _rds_resource
    EKSResponse._determine_resource = _eks_resource
    LambdaResponse._determine_resource = _lambda_resource
    _install_cloudwatch()


# ---- 4 and 5. S3 ---------------------------------------------------------------------

# moto's name for the call -> the IAM action (S3 API reference, "Permissions").
S3_ACTIONS = {
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "ListParts": "ListMultipartUploadParts",
    "ListBuckets": "ListAllMyBuckets",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "GetBucketNotificationConfiguration": "GetBucketNotification",
    "GetBucketAccelerateConfiguration": "GetAccelerateConfiguration",
    "GetBucketCors": "GetBucketCORS",
    "CreateMultipartUpload": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "UploadPartCopy": "PutObject",
    "CopyObject": "PutObject",
    "DeleteObjects": "DeleteObject",
}

# Bucket sub-resources moto's ACTION_MAP lacks or names differently (query key -> action).
S3_BUCKET_SUBRESOURCES = {
    "GET": {
        "encryption": "GetEncryptionConfiguration",
        "publicAccessBlock": "GetBucketPublicAccessBlock",
        "policyStatus": "GetBucketPolicyStatus",
        "ownershipControls": "GetBucketOwnershipControls",
        "lifecycle": "GetLifecycleConfiguration",
        # ListBucketIntelligentTieringConfigurations (moto answers it with a listing).
        "intelligent-tiering": "GetIntelligentTieringConfiguration",
    },
    "PUT": {
        "encryption": "PutEncryptionConfiguration",
        "publicAccessBlock": "PutBucketPublicAccessBlock",
        "ownershipControls": "PutBucketOwnershipControls",
    },
    "DELETE": {
        "encryption": "PutEncryptionConfiguration",
        "publicAccessBlock": "PutBucketPublicAccessBlock",
        "ownershipControls": "PutBucketOwnershipControls",
    },
}


def _install_s3() -> None:
    from moto.s3.responses import ACTION_MAP, S3Response

    for method, extra in S3_BUCKET_SUBRESOURCES.items():
        ACTION_MAP["BUCKET"][method].update(extra)
    ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"

    original = S3Response._authenticate_and_authorize_s3_action

    def authorize(self, bucket_name=None, key_name=None):
        action = self.data.get("Action")
        if isinstance(action, str):
            self.data["Action"] = S3_ACTIONS.get(action, action)
        context = {}
        if key_name is None and self.data.get("Action") == "ListBucket":
            for key in ("prefix", "delimiter", "max-keys"):
                if key in self.querystring:
                    context[f"s3:{key}"] = [self.querystring[key][0]]
        previous = _condition_context()
        _context.values = dict(context, **{"aws:SecureTransport": ["false"]})
        try:
            original(self, bucket_name=bucket_name, key_name=key_name)
        finally:
            _context.values = previous
        if (
            _auth_is_on()
            and key_name is not None
            and self.data.get("Action") == "GetObject"
            and self.method in ("GET", "HEAD")
            and not _key_exists(self, bucket_name, key_name)
        ):
            # 5: without s3:ListBucket a missing key is 403, not 404.
            resource = f"arn:{get_partition(self.region)}:s3:::{bucket_name}"
            _require(self, S3IAMRequest, "s3:ListBucket", resource)

    S3Response._authenticate_and_authorize_s3_action = authorize


def _key_exists(response, bucket_name: str, key_name: str) -> bool:
    try:
        bucket = response.backend.get_bucket(bucket_name)
    except Exception:
        return False
    return bucket.keys.get(key_name) is not None


# ---- 6. RotateSecret invokes the rotation function with the caller's permission ----------


def _install_rotate_secret() -> None:
    from moto.secretsmanager.models import secretsmanager_backends
    from moto.secretsmanager.responses import SecretsManagerResponse

    original = SecretsManagerResponse.rotate_secret

    def rotate_secret(self):
        if _auth_is_on():
            lambda_arn = self._get_param("RotationLambdaARN")
            if not lambda_arn:
                secrets = secretsmanager_backends[self.current_account][self.region].secrets
                secret_id = self._get_param("SecretId")
                if secret_id in secrets:
                    lambda_arn = secrets[secret_id].rotation_lambda_arn
            if lambda_arn:
                _require(self, IAMRequest, "lambda:InvokeFunction", lambda_arn)
        return original(self)

    SecretsManagerResponse.rotate_secret = rotate_secret


def main() -> None:
    _install_requests()
    _install_resources()
    _install_s3()
    _install_rotate_secret()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
