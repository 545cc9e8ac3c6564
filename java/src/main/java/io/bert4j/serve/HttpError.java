package io.bert4j.serve;

/** An error answer of the HTTP server: status, TEI-style error type and message. */
final class HttpError extends RuntimeException {
    final int status;
    final String type;

    HttpError(int status, String type, String message) {
        super(message);
        this.status = status;
        this.type = type;
    }

    static HttpError invalid(String message) {
        return new HttpError(422, "Validation", message);
    }
}
