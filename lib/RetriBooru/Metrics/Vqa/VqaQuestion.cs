namespace RetriBooru.Metrics.Vqa;

/// <summary>
/// One question about a detail of an image. <see cref="Id"/> is a stable key (also the attribute name an attribute
/// probe answers it with); <see cref="IsIdentity"/> marks details that belong to the character (hair, eyes,
/// clothing), as opposed to details a good generator should vary (background, pose, expression, framing).
/// </summary>
public sealed record VqaQuestion(string Id, string Text, bool IsIdentity);

/// <summary>One answer; <see cref="Answer"/> is a short phrase in words, normalised by <see cref="VqaText.Normalize"/>.</summary>
public sealed record VqaAnswer(string QuestionId, string Answer);

/// <summary>The fixed question set used by SWD: identity details and the details that should vary.</summary>
public static class VqaQuestions
{
    public static readonly VqaQuestion Background = new("background", "Describe the background of this image in a few words.", false);
    public static readonly VqaQuestion Pose = new("pose", "What pose is the character in? Answer in a few words.", false);
    public static readonly VqaQuestion Expression = new("expression", "What is the character's facial expression? Answer in a few words.", false);
    public static readonly VqaQuestion Framing = new("framing", "How is the character framed (close-up, upper body, full body) and where in the picture? Answer in a few words.", false);
    public static readonly VqaQuestion Action = new("action", "What is the character doing? Answer in a few words.", false);
    public static readonly VqaQuestion Clothing = new("clothing", "What is the character wearing? Answer in a few words.", true);
    public static readonly VqaQuestion Hair = new("hair", "Describe the character's hair colour and style in a few words.", true);
    public static readonly VqaQuestion Eyes = new("eyes", "What colour are the character's eyes? Answer in one or two words.", true);
    public static readonly VqaQuestion Accessories = new("accessories", "What accessories is the character wearing, if any? Answer in a few words.", true);

    /// <summary>The default set, in a fixed order (results depend on order only through reporting).</summary>
    public static IReadOnlyList<VqaQuestion> Default { get; } = [Background, Pose, Expression, Framing, Action, Clothing, Hair, Eyes, Accessories];

    public static VqaQuestion Get(string id) =>
        Default.FirstOrDefault(q => q.Id == id) ?? throw new KeyNotFoundException($"no question with id '{id}' in the default set ({string.Join(", ", Default.Select(q => q.Id))})");
}

public static class VqaText
{
    /// <summary>Lower case, underscores to spaces, collapsed whitespace, trailing punctuation removed.</summary>
    public static string Normalize(string answer)
    {
        var text = answer.Replace('_', ' ').Trim().ToLowerInvariant().TrimEnd('.', '!', '?', ',', ';', ':');
        return string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
    }
}
