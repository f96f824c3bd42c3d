namespace RetriBooru.Interactive;

/// <summary>Marker for the notebook extension; formatters land with the notebooks issue.</summary>
public static class InteractiveInfo { public const string Name = "RetriBooru.Interactive"; }
