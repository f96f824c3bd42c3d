namespace RetriBooru.Runtime;

/// <summary>Which exception of a wrapped failure to report.</summary>
public static class ExceptionCause
{
    /// <summary>
    /// Parallel loops and reflection wrap the real failure (a full disk hit by every worker is an AggregateException of
    /// IOExceptions); any other wrapper is ours and carries the better message (it names the file, e.g.
    /// "PATH:3: bad manifest line: ..."), not the parser message inside it.
    /// </summary>
    public static Exception Of(Exception exception) => exception switch
    {
        AggregateException aggregate when aggregate.InnerExceptions.Count > 0 => Of(aggregate.Flatten().InnerExceptions[0]),
        System.Reflection.TargetInvocationException { InnerException: { } inner } => Of(inner),
        TypeInitializationException { InnerException: { } inner } => Of(inner),
        _ => exception,
    };
}
