namespace RetriBooru.Interactive;

/// <summary>
/// A piece of HTML that notebooks display as HTML. The workbench uses its own type rather than ASP.NET's
/// HtmlString: the kernels ship Microsoft.AspNetCore.Html.Abstractions 2.3.0 while NuGet resolves 2.3.13 at
/// build time, and the C# kernel refuses an assembly compiled against the higher version (CS1705).
/// </summary>
public sealed record HtmlView(string Html)
{
    public override string ToString() => Html;
}
