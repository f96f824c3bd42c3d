using System.ComponentModel;
using System.Text.Json.Serialization;

namespace RetriBooru.Settings;

/// <summary>The reference-conditioned models the workbench trains and compares.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ModelKind>)), TypeConverter(typeof(WordConverter<ModelKind>)), Word("model", "retrinet, controlnet, ipadapter or text-only")]
public enum ModelKind
{
    [JsonStringEnumMemberName("retrinet")] RetriNet,
    [JsonStringEnumMemberName("controlnet")] ControlNet,
    [JsonStringEnumMemberName("ipadapter")] IpAdapter,
    [JsonStringEnumMemberName("text-only")] TextOnly,
}

/// <summary>Where a training example's references come from.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ReferenceScheme>)), TypeConverter(typeof(WordConverter<ReferenceScheme>)), Word("scheme", "a (same-image crops, leakage study only) or b (other images)")]
public enum ReferenceScheme
{
    /// <summary>Crops of the target itself (the leaky scheme the paper argues against; leakage study only).</summary>
    [JsonStringEnumMemberName("a")] A,
    /// <summary>Other images of the same identity (leakage-free).</summary>
    [JsonStringEnumMemberName("b")] B,
}

/// <summary>Which reference sets a model is evaluated on.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<EvaluationSplit>)), TypeConverter(typeof(WordConverter<EvaluationSplit>)), Word("split", "seen, unseen or composition")]
public enum EvaluationSplit
{
    /// <summary>Held-out images of seen characters (manifest split <c>heldout</c>).</summary>
    [JsonStringEnumMemberName("seen")] Seen,
    /// <summary>Characters never trained on (manifest split <c>unseen</c>).</summary>
    [JsonStringEnumMemberName("unseen")] Unseen,
    /// <summary>Face references of one outfit + clothes references of another outfit of a seen character.</summary>
    [JsonStringEnumMemberName("composition")] Composition,
}

/// <summary>The prompt a model is trained or sampled with.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PromptView>)), TypeConverter(typeof(WordConverter<PromptView>)), Word("view", "full or context")]
public enum PromptView
{
    /// <summary>The target's whole tag prompt (the paper).</summary>
    [JsonStringEnumMemberName("full")] Full,
    /// <summary>Character, hair, eye and clothing tags removed: identity only from the references.</summary>
    [JsonStringEnumMemberName("context")] Context,
}

/// <summary>After warm-up, how the learning rate moves.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<LearningRateSchedule>)), TypeConverter(typeof(WordConverter<LearningRateSchedule>)), Word("learning-rate schedule", "constant or cosine")]
public enum LearningRateSchedule
{
    [JsonStringEnumMemberName("constant")] Constant,
    /// <summary>Half a cosine from the learning rate down to 0 at the last step.</summary>
    [JsonStringEnumMemberName("cosine")] Cosine,
}
